"""The CLI's token lookup: the JSON copy beside the users file is the file's, never a stale one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emulator.errors import ConfigError
from emulator.users.tokens import token_for

ALICE = {"name": "alice", "uid": 1500, "gid": 1500, "token": "a" * 20}
BOB = {"name": "bob", "uid": 1501, "gid": 1501, "token": "b" * 20}


def _write(path: Path, *users: dict[str, object]) -> None:
    path.write_text(yaml.safe_dump({"users": list(users)}))


def _copy(path: Path) -> Path:
    return path.with_name(f".{path.name}.tokens.json")


def test_tokens_are_read_once_then_from_an_owner_only_copy(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, ALICE, BOB)
    assert token_for(path) == ALICE["token"] and token_for(path, "bob") == BOB["token"]
    copy = _copy(path)
    assert copy.stat().st_mode & 0o777 == 0o600
    assert json.loads(copy.read_text())["tokens"] == [["alice", "a" * 20], ["bob", "b" * 20]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["users.yaml", copy.name])  # no partial file left


def test_an_edited_users_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, ALICE)
    assert token_for(path) == "a" * 20
    _write(path, {**ALICE, "token": "c" * 20}, BOB)  # a rotated token: same user, a new line
    assert token_for(path) == "c" * 20 and token_for(path, "bob") == "b" * 20


def test_the_copy_is_trusted_only_with_the_users_files_stamp(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, ALICE)
    token_for(path)
    copy = _copy(path)
    planted = json.loads(copy.read_text())
    planted["tokens"] = [["alice", "z" * 20]]
    planted["stamp"][1] += 1  # a copy from another version of the file
    copy.write_text(json.dumps(planted))
    assert token_for(path) == "a" * 20
    copy.write_text("{not json")
    assert token_for(path) == "a" * 20


def test_an_unknown_user_or_a_missing_file_gets_the_users_files_own_complaint(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, ALICE)
    with pytest.raises(ConfigError, match="carol"):
        token_for(path, "carol")
    with pytest.raises(ConfigError):
        token_for(tmp_path / "absent.yaml")
    assert not _copy(tmp_path / "absent.yaml").exists()


def test_a_folder_it_may_not_write_to_means_no_copy_and_still_the_token(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _write(path, ALICE)
    tmp_path.chmod(0o500)
    try:
        assert token_for(path) == "a" * 20
    finally:
        tmp_path.chmod(0o700)
    # root writes anyway; anyone else gets no copy and no partial file
    assert {p.name for p in tmp_path.iterdir()} <= {"users.yaml", _copy(path).name}


def test_a_copy_that_cannot_be_written_is_no_error_and_leaves_what_was_there(tmp_path: Path) -> None:
    """A read-only folder (the service's container mounts the config read-only) or anything in the way: the token
    is still read, no copy is made, and nothing of ours is left behind."""
    import os

    path = tmp_path / "users.yaml"
    _write(path, ALICE)
    in_the_way = tmp_path / f"{_copy(path).name}.{os.getpid()}"
    in_the_way.mkdir()
    assert token_for(path) == "a" * 20
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["users.yaml", in_the_way.name])
    assert in_the_way.is_dir()


def test_commands_started_together_on_a_fresh_machine_agree_on_one_users_file(tmp_path: Path) -> None:
    """`up` and `token` at the same moment: each finds no file or the whole file, and both print the same token."""
    from concurrent.futures import ThreadPoolExecutor

    from emulator.users.file import ensure_users_file, read_users_file

    path = tmp_path / "config" / "users.yaml"

    def first_use() -> str:
        ensure_users_file(path)
        return token_for(path)

    with ThreadPoolExecutor(16) as pool:
        tokens = set(pool.map(lambda _: first_use(), range(64)))
    assert tokens == {read_users_file(path).users[0].token}
    assert path.stat().st_mode & 0o777 == 0o600
    assert {p.name for p in path.parent.iterdir()} == {"users.yaml", _copy(path).name}
