"""A user's API token from the users file, for the CLI's session commands.

Read with YAML alone when the file is as expected, so those commands never load the user model
(pydantic); anything else goes through `emulator.users.file`, for its exact complaint.
"""

from __future__ import annotations

from pathlib import Path

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML was built with it


def token_for(path: Path, name: str | None = None) -> str:
    """The token of the named user (default: the first in the file)."""
    try:
        entries = yaml.load(path.read_text(), Loader=_LOADER)["users"]
        entry = next(e for e in entries if e["name"] == name) if name else entries[0]
        token = entry["token"]
        if isinstance(token, str) and token:
            return token
    except (OSError, yaml.YAMLError, LookupError, TypeError, StopIteration):
        pass
    from emulator.users.file import read_users_file

    return read_users_file(path).token_for(name, path)
