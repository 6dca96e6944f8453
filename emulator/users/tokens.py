"""A user's API token from the users file, for the CLI's session commands.

The light commands must start fast, and importing a YAML parser costs more than their whole request. So the
tokens are also kept beside the users file in JSON (`.users.yaml.tokens.json`, readable by its owner only,
the secrets the users file itself holds), stamped with the users file's size and modification time: a
stamp that no longer matches (the file was edited, a token rotated) reads the YAML again and rewrites it.
Read with YAML alone when the file is as expected, so those commands never load the user model
(pydantic); anything else goes through `emulator.users.file`, for its exact complaint.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def _cache_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.tokens.json")


def _stamp(path: Path) -> list[int]:
    seen = path.stat()
    return [seen.st_size, seen.st_mtime_ns, seen.st_ino]


def _cached(path: Path, stamp: list[int]) -> list[list[str]] | None:
    try:
        kept = json.loads(_cache_of(path).read_text())
        return kept["tokens"] if kept["stamp"] == stamp else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep(path: Path, stamp: list[int], tokens: list[list[str]]) -> None:
    """Write the JSON copy (owner-only from its first byte); a folder we may not write to (a read-only mount, as
    in the service's container) just means no copy, and no partial file is ever left."""
    cache = _cache_of(path)
    partial = cache.with_name(f"{cache.name}.{os.getpid()}")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(descriptor, "w") as out:
            json.dump({"stamp": stamp, "tokens": tokens}, out)
        os.replace(partial, cache)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)  # gone already once replaced; after a failure or an interrupt, now


def _from_yaml(path: Path) -> list[list[str]] | None:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML was built with it
    try:
        entries = yaml.load(path.read_text(), Loader=loader)["users"]
        tokens = [[entry["name"], entry["token"]] for entry in entries]
    except (OSError, yaml.YAMLError, LookupError, TypeError):
        return None
    valid = all(isinstance(name, str) and isinstance(token, str) and token for name, token in tokens)
    return tokens if tokens and valid else None


def token_for(path: Path, name: str | None = None) -> str:
    """The token of the named user (default: the first in the file)."""
    try:
        stamp = _stamp(path)
    except OSError:
        stamp = None
    tokens = _cached(path, stamp) if stamp else None
    if tokens is None and stamp:
        tokens = _from_yaml(path)
        if tokens is not None:
            _keep(path, stamp, tokens)
    if tokens:
        found = next((token for user, token in tokens if user == name), None) if name else tokens[0][1]
        if found:
            return found
    from emulator.users.file import read_users_file

    return read_users_file(path).token_for(name, path)


def admin_token(path: Path) -> str:
    """The token of the first admin in the users file, for the CLI's admin commands (`broadcast`, `usage`)."""
    from emulator.users.file import ensure_users_file, read_users_file

    ensure_users_file(path)
    return read_users_file(path).admin_token(path)
