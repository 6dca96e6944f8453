import os
from pathlib import Path

import pytest
import yaml

from emulator.core.identity import UsersSource, load_directory
from emulator.errors import ConfigError
from emulator.users.file import ensure_users_file
from emulator.users.tokens import token_for


def test_the_users_file_is_made_once_private_and_never_for_root(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "users.yaml"
    ensure_users_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_text()
    ensure_users_file(path)
    assert path.read_text() == first
    directory = load_directory(path)
    assert directory.default.uid != 0
    if os.getuid() != 0:
        assert directory.default.uid == os.getuid()
    token = token_for(path)
    assert directory.authenticate(token) == directory.default
    assert directory.authenticate("x" * len(token)) is None


def _write(path: Path, users: list[dict[str, object]]) -> None:
    path.write_text(yaml.safe_dump({"users": users}))


ALICE = {"name": "alice", "uid": 1500, "gid": 1500, "token": "a" * 20}
BOB = {"name": "bob", "uid": 1501, "gid": 1501, "token": "b" * 20}


def test_a_workshop_adds_users_without_a_restart_and_a_broken_edit_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, [ALICE])
    source = UsersSource(path)
    assert [u.name for u in source.current().users] == ["alice"]
    _write(path, [ALICE, BOB])
    bob = source.current().authenticate("b" * 20)
    assert bob is not None and bob.name == "bob"
    path.write_text("users: [oops")
    assert [u.name for u in source.current().users] == ["alice", "bob"]


@pytest.mark.parametrize(
    "users, message",
    [
        ([ALICE, {**BOB, "token": ALICE["token"]}], "every user needs a token of its own"),
        ([ALICE, {**BOB, "name": "alice"}], "every user needs a name of its own"),
        ([{**ALICE, "uid": 0}], "users.0.uid"),
    ],
)
def test_bad_users_files_are_refused_with_the_reason(
    tmp_path: Path, users: list[dict[str, object]], message: str
) -> None:
    path = tmp_path / "users.yaml"
    _write(path, users)
    with pytest.raises(ConfigError, match=message):
        load_directory(path)
