"""Users: the users file, editing it (accounts), passwords and API tokens.

Empty on purpose: `emulate ps` reads a token through `users.tokens` without loading pydantic.
"""
