"""emulate users: the users file edited for a room of people, without losing anyone or sharing by accident."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emulator.accounts import add_user, import_users, remove_user, set_password
from emulator.core.identity import load_directory
from emulator.errors import ConfigError


def test_users_get_ids_groups_passwords_and_tokens(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    ada = add_user(path, "ada", ["astro"])
    grace = add_user(path, "grace", ["astro", "team-b"])
    directory = load_directory(path)
    assert directory.sign_in("ada", ada.password).name == "ada"  # type: ignore[union-attr]
    assert directory.sign_in("ada", grace.password) is None and directory.sign_in("nobody", "x") is None
    assert directory.authenticate(grace.token).name == "grace"  # type: ignore[union-attr]
    users = {u.name: u for u in directory.users}
    astro = {g.gid for u in ("ada", "grace") for g in users[u].groups if g.name == "astro"}
    assert len(astro) == 1 and astro.pop() >= 30001  # one gid for the group, from the shared range
    assert users["ada"].may_open(users["grace"]) and users["grace"].may_open(users["ada"])
    assert ada.password not in path.read_text() and "scrypt$" in path.read_text()  # only the hash
    assert path.stat().st_mode & 0o777 == 0o600


def test_nobody_is_lost_and_nothing_is_shared_by_accident(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "ada", ["astro"])
    document = yaml.safe_load(path.read_text())
    document["users"][0]["groups"].append({"name": "users", "gid": 100})  # a host group the first user had
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="system group"):
        add_user(path, "eve", ["users"])
    with pytest.raises(ConfigError, match="a user's name"):
        add_user(path, "eve", ["ada"])
    with pytest.raises(ConfigError, match="not a valid group name"):
        add_user(path, "eve", ["../etc"])
    with pytest.raises(ConfigError, match="row 2: 'Bad Name' is not a valid user name; nothing was imported"):
        import_users(path, "name,groups\nbob,astro\nBad Name,astro\n")
    before = {u.name for u in load_directory(path).users}
    made = import_users(path, "bob,astro;team\ncarol\n")
    assert [m.name for m in made] == ["bob", "carol"]
    assert {u.name for u in load_directory(path).users} == before | {"bob", "carol"}
    old = load_directory(path).fingerprint("bob")
    set_password(path, "bob")
    assert load_directory(path).fingerprint("bob") != old  # earlier sign-ins lapse
    remove_user(path, "bob")
    assert "bob" not in {u.name for u in load_directory(path).users}
