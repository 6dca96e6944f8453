"""emulate users: the users file edited for a room of people, without losing anyone or sharing by accident."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.core.identity import load_directory
from emulator.core.models import User
from emulator.errors import ConfigError
from emulator.users.accounts import (
    FIRST_GROUP_GID,
    FIRST_UID,
    LAST_GROUP_GID,
    LAST_UID,
    SYSTEM_GROUPS,
    SYSTEM_USERS,
    add_user,
    import_users,
    remove_user,
    rotate_token,
    set_admin,
    set_password,
    user_token,
)
from emulator.users.file import ensure_users_file, read_users_file

# The invoking OS user, as `ensure_users_file` would write them: ids and host groups outside both ranges.
OWNER = {
    "name": "owner",
    "uid": 1000,
    "gid": 1000,
    "groups": [{"name": "owner", "gid": 1000}, {"name": "docker", "gid": 999}, {"name": "users", "gid": 100}],
    "token": "owner-token-0123456789",
}


def seeded(folder: Path, *more: dict[str, object], **marks: int) -> Path:
    """A users file with the owner (and `more` entries, and marks) as a person or an older emulator wrote it."""
    path = folder / "users.yaml"
    path.write_text(yaml.safe_dump({**marks, "users": [OWNER, *more]}, sort_keys=False))
    path.chmod(0o600)
    return path


def shared_gids(path: Path) -> dict[str, int]:
    """Each shared group's gid (asserting a group has one gid however many users are in it)."""
    found: dict[str, int] = {}
    for user in load_directory(path).users:
        for group in user.groups:
            if group.gid >= FIRST_GROUP_GID:
                assert found.setdefault(group.name, group.gid) == group.gid
    return found


def _name(user: User | None) -> str | None:
    """Who signed in (None: nobody)."""
    return None if user is None else user.name


def test_users_get_ids_groups_passwords_and_tokens(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    ada = add_user(path, "ada", ["astro"])
    grace = add_user(path, "grace", ["astro", "team-b"])
    directory = load_directory(path)
    assert _name(directory.sign_in("ada", ada.password)) == "ada"
    assert directory.sign_in("ada", grace.password) is None and directory.sign_in("nobody", "x") is None
    assert _name(directory.authenticate(grace.token)) == "grace"
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
    document["users"][0]["groups"].append({"name": "docker", "gid": 999})  # a host group the first user had
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="system group"):
        add_user(path, "eve", ["docker"])
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


def test_ids_are_never_given_twice(tmp_path: Path) -> None:
    path = seeded(tmp_path)
    ada = add_user(path, "ada", ["astro"])
    bob = add_user(path, "bob", ["solo"])
    assert (ada.uid, bob.uid) == (FIRST_UID, FIRST_UID + 1)
    assert shared_gids(path) == {"astro": FIRST_GROUP_GID, "solo": FIRST_GROUP_GID + 1}
    assert remove_user(path, "bob").uid == bob.uid  # the last uid, and the last member of `solo`
    carol = add_user(path, "carol", ["solo", "team"])  # `solo` is a new group now: a gid of its own
    assert carol.uid == FIRST_UID + 2
    assert shared_gids(path) == {"astro": FIRST_GROUP_GID, "solo": FIRST_GROUP_GID + 2, "team": FIRST_GROUP_GID + 3}
    assert add_user(path, "dan", []).uid == FIRST_UID + 3
    assert add_user(path, "bob", []).uid == bob.uid  # the same name back: its own uid, and so its kept home
    document = yaml.safe_load(path.read_text())
    assert (document["next_uid"], document["next_gid"]) == (FIRST_UID + 4, FIRST_GROUP_GID + 4)
    assert document["retired"] == []


def test_a_file_from_before_the_marks_gets_them_on_its_next_edit(tmp_path: Path) -> None:
    old = {"name": "old", "uid": 20005, "gid": 20005, "groups": [{"name": "proj", "gid": 30007}], "token": "o" * 20}
    path = seeded(tmp_path, old)
    assert "next_uid" not in path.read_text()
    remove_user(path, "old")  # the first edit removes the user holding the highest ids: they still count
    document = yaml.safe_load(path.read_text())
    assert (document["next_uid"], document["next_gid"]) == (20006, 30008)
    assert add_user(path, "ada", ["proj"]).uid == 20006 and shared_gids(path) == {"proj": 30008}
    # Marks behind ids someone wrote by hand: the ids win.
    hand = {"name": "hand", "uid": 20100, "gid": 20100, "groups": [{"name": "hg", "gid": 30300}], "token": "h" * 20}
    path = seeded(tmp_path, hand, next_uid=20001, next_gid=30001)
    assert add_user(path, "ben", ["new"]).uid == 20101 and shared_gids(path)["new"] == 30301


def test_each_group_named_at_once_gets_its_own_gid(tmp_path: Path) -> None:
    path = seeded(tmp_path)
    add_user(path, "gx1", ["pa", "pb", "pa"])
    made = import_users(path, "name,groups\nr1,x\nr2,y;pc\nr3,x;pa\n")
    gids = shared_gids(path)
    assert sorted(gids) == ["pa", "pb", "pc", "x", "y"] and len(set(gids.values())) == 5
    users = {u.name: u for u in load_directory(path).users}
    assert {g.gid for g in users["r3"].groups if g.name == "x"} == {gids["x"]}  # row 3 joins row 1's x
    assert [m.groups for m in made] == [["x"], ["y", "pc"], ["x", "pa"]]


def test_uids_never_meet_gids_and_a_spent_range_is_refused(tmp_path: Path) -> None:
    squatter = {"name": "sq", "uid": 30050, "gid": 30050, "groups": [], "token": "s" * 20}  # a hand-written uid
    path = seeded(tmp_path, squatter, next_uid=LAST_UID)
    last = add_user(path, "last", ["big"])
    assert last.uid == LAST_UID and shared_gids(path)["big"] == 30051  # above the squatter's id
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=f"^no uid left for a new user: {FIRST_UID}-{LAST_UID} have all been given"):
        add_user(path, "late", [])
    assert path.read_bytes() == before
    path = seeded(tmp_path, next_gid=LAST_GROUP_GID)
    add_user(path, "ada", ["g1"])
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="^no gid left for a new group"):
        add_user(path, "bea", ["g1", "g2"])
    assert path.read_bytes() == before
    assert add_user(path, "bea", ["g1"]).uid < FIRST_GROUP_GID  # an existing group is still joined


@pytest.mark.parametrize("name", ["root", "daemon", "nobody", "_apt", "www-data", "sudo", "users", "nogroup"])
def test_system_names_are_refused_for_users_and_groups(tmp_path: Path, name: str) -> None:
    path = seeded(tmp_path)
    before = path.read_bytes()
    kind = "account" if name in SYSTEM_USERS else "group"
    words = f"'{name}' is a system {kind}'s name in the session images; choose another"
    with pytest.raises(ConfigError, match=f"^{words}$"):
        add_user(path, name, [])
    with pytest.raises(ConfigError, match=f"^{words}$"):
        add_user(path, "ada", [name])
    with pytest.raises(ConfigError, match=f"^row 2: {words}; nothing was imported$"):
        import_users(path, f"ada\n{name}\n")
    assert path.read_bytes() == before


def test_system_names_are_base_passwds() -> None:
    assert {"root", "daemon", "bin", "sys", "nobody", "_apt"} <= SYSTEM_USERS
    assert {"root", "adm", "sudo", "staff", "users", "nogroup", "plugdev", "shadow"} <= SYSTEM_GROUPS


def test_bad_input_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = seeded(tmp_path)
    add_user(path, "ada", ["astro"])
    before, inode = path.read_bytes(), path.stat().st_ino
    attempts: list[Callable[[], object]] = [
        lambda: add_user(path, "ada", []),
        lambda: add_user(path, "Bad", []),
        lambda: add_user(path, "eve", ["ok", "Not Ok"]),
        lambda: add_user(path, "astro", []),
        lambda: remove_user(path, "nobody-here"),
        lambda: set_password(path, "nobody-here"),
        lambda: rotate_token(path, "nobody-here"),
        lambda: import_users(path, "bob,g1\nada\n"),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError) as caught:
            attempt()
        assert "\n" not in caught.value.message
    assert path.read_bytes() == before and path.stat().st_ino == inode


def test_tokens_rotate_with_a_password_reset_unless_kept(tmp_path: Path) -> None:
    path = seeded(tmp_path)
    ada = add_user(path, "ada", [])
    assert user_token(path, "ada") == ada.token
    fresh = rotate_token(path, "ada")
    directory = load_directory(path)
    assert fresh != ada.token and user_token(path, "ada") == fresh
    assert directory.authenticate(ada.token) is None and _name(directory.authenticate(fresh)) == "ada"
    reset = set_password(path, "ada", "a new password")
    assert reset.password == "a new password" and reset.token not in (None, fresh)
    assert load_directory(path).authenticate(fresh) is None
    kept = set_password(path, "ada", keep_token=True)
    assert kept.token is None and user_token(path, "ada") == reset.token
    assert load_directory(path).sign_in("ada", kept.password) is not None
    with pytest.raises(ConfigError, match="no user named eve"):
        user_token(path, "eve")


def test_the_users_file_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    edits: list[Callable[[], object]] = [
        lambda: add_user(path, "ada", ["astro"]),
        lambda: add_user(path, "bob", []),
        lambda: remove_user(path, "bob"),
        lambda: set_password(path, "ada"),
        lambda: rotate_token(path, "ada"),
        lambda: import_users(path, "carol,astro\n"),
    ]
    for edit in edits:
        edit()
        assert path.stat().st_mode & 0o777 == 0o600


def test_the_cli_says_what_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.cli import cli

    monkeypatch.setenv("EMULATE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("EMULATE_STATE_DIR", str(tmp_path / "state"))  # the audit log's, never the real one
    path = seeded(tmp_path)

    def emulate(*args: str, stdin: str | None = None) -> tuple[str, str]:
        result = CliRunner().invoke(cli, ["users", *args], input=stdin)
        assert result.exit_code == 0, result.output
        return result.stdout, result.stderr

    out, _ = emulate("add", "ada", "--group", "pa", "--group", "pb")
    assert out.startswith(f"added ada (uid {FIRST_UID}; groups pa, pb)\n")
    assert set(shared_gids(path).values()) == {FIRST_GROUP_GID, FIRST_GROUP_GID + 1}
    emulate("add", "bob")
    out, _ = emulate("rm", "bob")
    assert out == (
        f"removed bob; their /arc/home/bob is kept (uid {FIRST_UID + 1}); that uid will not be given to anyone else\n"
        "their sessions end within 10 s (if the platform is up)\n"
    )
    emulate("add", "cy")
    out, _ = emulate("rm", "cy", "--keep-sessions")
    assert out.endswith("their sessions run on until they expire; `emulate users rm cy` again ends them\n")
    assert load_directory(path).keeps_sessions_of == {"cy"} and not load_directory(path).removed("cy")
    assert emulate("rm", "cy") == ("cy's kept sessions end within 10 s (if the platform is up)\n", "")
    assert load_directory(path).removed("cy") and load_directory(path).removed("bob")
    token = user_token(path, "ada")
    assert emulate("token", "ada") == (f"{token}\n", "")
    out, err = emulate("token", "ada", "--rotate")
    assert out == f"{user_token(path, 'ada')}\n" != f"{token}\n" and "old API token no longer works" in err
    out, _ = emulate("passwd", "ada")
    password, new = (line.split()[1] for line in out.splitlines())
    assert out.startswith("password: ") and new == user_token(path, "ada")
    assert load_directory(path).sign_in("ada", password) is not None
    out, err = emulate("passwd", "ada", "--password-stdin", "--keep-token", stdin="long enough\n")
    assert out == "" and "password of ada changed" in err and user_token(path, "ada") == new
    out, err = emulate("passwd", "ada", "--password-stdin", stdin="long enough\n")
    assert out == f"token:    {user_token(path, 'ada')}\n"


def test_the_cli_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from emulator.cli import main

    monkeypatch.setenv("EMULATE_CONFIG_DIR", str(tmp_path))
    before = seeded(tmp_path).read_bytes()
    for args, words in [
        (["add", "root"], "error: 'root' is a system account's name in the session images; choose another"),
        (["add", "ada", "--group", "sudo"], "error: 'sudo' is a system group's name in the session images"),
        (["token", "eve"], "error: no user named eve in"),
        (["token", "eve", "--rotate"], "error: no user named eve"),
        (["rm", "eve"], "error: no user named eve"),
    ]:
        monkeypatch.setattr(sys, "argv", ["emulate", "users", *args])
        with pytest.raises(SystemExit) as stopped:
            main()
        err = capsys.readouterr().err
        assert stopped.value.code == 1 and err.startswith(words) and err.count("\n") == 1, err
    assert (tmp_path / "users.yaml").read_bytes() == before


# (what, the groups of each new user, which user to remove): `add` makes one user, `import` a few.
ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["add", "import", "rm"]),
        st.lists(st.lists(st.sampled_from(["g1", "g2", "g3", "g4"]), max_size=3), min_size=1, max_size=3),
        st.integers(min_value=0, max_value=20),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(ACTIONS)
def test_no_sequence_of_adds_and_removals_gives_an_id_twice(actions: list[tuple[str, list[list[str]], int]]) -> None:
    """Every new user gets a uid never given before; a gid always names one group, and the gid of a
    group that lost its last member never comes back; uids and shared gids never meet."""
    with tempfile.TemporaryDirectory() as folder, mock.patch("emulator.users.accounts.hash_password", lambda _: "h"):
        path = seeded(Path(folder))  # the slow scrypt hash aside: only ids are under test
        uids: set[int] = set()
        names: dict[int, str] = {}  # gid -> the group it was given to
        gone: set[int] = set()
        count = 0
        for what, groups, which in actions:
            before = set(shared_gids(path).values())
            made = []
            if what == "add":
                count += 1
                made = [add_user(path, f"u{count}", groups[0])]
            elif what == "import":
                made = import_users(path, "".join(f"u{count + i},{';'.join(g)}\n" for i, g in enumerate(groups, 1)))
                count += len(groups)
            elif removable := [u.name for u in load_directory(path).users if u.name != "owner"]:
                remove_user(path, removable[which % len(removable)])
            for credentials in made:
                assert FIRST_UID <= credentials.uid <= LAST_UID and credentials.uid not in uids
                uids.add(credentials.uid)
            live = shared_gids(path)
            for name, gid in live.items():
                assert FIRST_GROUP_GID <= gid <= LAST_GROUP_GID and gid not in gone
                assert names.setdefault(gid, name) == name
            gone |= before - set(live.values())


def test_admins_are_named_in_the_file_and_the_last_one_stays(tmp_path: Path) -> None:
    path = seeded(tmp_path)
    assert add_user(path, "tutor", [], admin=True).admin and not add_user(path, "ada", []).admin
    made = import_users(path, "name,groups,admin\nbo,astro,yes\ncy,,\ndi,astro;x,0\n")
    assert [(c.name, c.admin) for c in made] == [("bo", True), ("cy", False), ("di", False)]
    admins = {u.name for u in load_directory(path).users if u.admin}
    assert admins == {"tutor", "bo"}
    assert "admin: true" in path.read_text() and "admin: false" not in path.read_text()  # written only when true
    assert read_users_file(path).admin_token(path) == user_token(path, "tutor")
    assert set_admin(path, "ada", True) and not set_admin(path, "ada", True)
    for name in ("tutor", "bo"):
        set_admin(path, name, False)
    with pytest.raises(ConfigError, match="ada is the last admin; make another one first"):
        set_admin(path, "ada", False)
    with pytest.raises(ConfigError, match="row 1: the admin column says 'maybe'.*nothing was imported"):
        import_users(path, "ed,,maybe\n")
    with pytest.raises(ConfigError, match="row 1: 4 columns"):
        import_users(path, "ed,,yes,extra\n")
    (tmp_path / "none").mkdir()
    without = seeded(tmp_path / "none")
    with pytest.raises(ConfigError, match="no admin in .*: make one with `emulate users admin NAME`"):
        read_users_file(without).admin_token(without)


def test_the_last_admin_is_never_removed(tmp_path: Path) -> None:
    path = seeded(tmp_path)
    add_user(path, "tutor", [], admin=True)
    add_user(path, "ada", [])
    before = path.read_text()
    with pytest.raises(ConfigError, match=r"^tutor is the last admin; make another one first \(`emulate users admin"):
        remove_user(path, "tutor")
    assert path.read_text() == before
    set_admin(path, "ada", True)
    remove_user(path, "tutor")  # another admin stays
    assert [u.name for u in load_directory(path).users if u.admin] == ["ada"]


def test_the_first_user_of_a_new_file_runs_the_platform_and_is_an_admin(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    ensure_users_file(path)
    (user,) = load_directory(path).users
    assert user.admin
