"""The audit log: its lines, what they never hold, its rotation and its mode, and `emulate users`' own lines."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from emulator.api.app import create_app
from emulator.core.audit import KEEP, AuditLog, append, first_words, line
from emulator.core.auth import Authenticator
from emulator.core.callback import CallbackTokens
from emulator.core.identity import UsersSource
from emulator.core.signin import SignIns
from emulator.core.store import Store
from emulator.core.throttle import SignInThrottle
from emulator.settings import Settings
from emulator.users.accounts import add_user
from emulator.users.file import ensure_users_file


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def test_a_line_says_when_what_who_from_where_and_how_it_went() -> None:
    found = json.loads(line("launch", "ada", "10.0.0.7", "ok", session="k3x9q2ab", type="notebook"))
    assert list(found)[:5] == ["time", "action", "who", "from", "outcome"]
    assert found["action"] == "launch" and found["who"] == "ada" and found["from"] == "10.0.0.7"
    assert found["outcome"] == "ok" and found["session"] == "k3x9q2ab" and found["type"] == "notebook"
    assert str(found["time"]).endswith("Z")


@pytest.mark.parametrize("field", ["password", "token", "api_token", "registry_secret", "Cookie", "auth", "key"])
def test_a_field_named_as_a_secret_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="never holds a secret"):
        line("sign-in", "ada", None, **{field: "x"})


def test_a_long_value_is_cut() -> None:
    found = json.loads(line("sign-in-failed", None, None, "failed", user="a" * 10_000))
    assert len(str(found["user"])) == 200


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("Invalid value for 'cores': lots-of-them", "Invalid value for 'cores'"),
        ("EMULATE_FAULT=oom:5 refused: faults are off", "…"),
        (
            "User ada has reached the maximum of 3 active sessions.",
            "User ada has reached the maximum of 3 active sessions.",
        ),
        ("one two three four five six seven eight nine ten eleven", "one two three four five six seven eight nine ten"),
        ("image 'hunter2-private' is no longer here", "image '…' is no longer here"),
        ("", ""),
    ],
)
def test_a_reason_keeps_its_first_words_and_nothing_the_request_sent(message: str, kept: str) -> None:
    assert first_words(message, withheld=["hunter2-private"]) == kept


def test_the_service_log_is_private_and_rotated_keeping_five(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.log"
    log = AuditLog(path, max_bytes=300)
    try:
        for n in range(60):
            log.record("renew", "ada", "127.0.0.1", session=f"s{n:07d}")
    finally:
        log.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["audit.log", *(f"audit.log.{n}" for n in range(1, KEEP + 1))]
    for kept in path.parent.iterdir():
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600, kept
        assert all(entry["action"] == "renew" for entry in _lines(kept))  # whole lines, never one cut in two
    assert _lines(path)[-1]["session"] == "s0000059"


def test_another_process_appends_whole_lines_beside_the_services(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    try:
        log.record("sign-in", "ada", "127.0.0.1")
        append(path, "user-add", "operator", "cli", user="bob")
        log.record("logout", "ada", "127.0.0.1")
    finally:
        log.close()
    assert [entry["action"] for entry in _lines(path)] == ["sign-in", "user-add", "logout"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner takes root")
def test_root_gives_a_new_log_to_the_state_folders_owner(tmp_path: Path) -> None:
    """The service runs as root in its container; the person who runs `emulate users` must still append."""
    folder = tmp_path / "state"
    folder.mkdir()
    os.chown(folder, 4321, 4321)
    append(folder / "audit.log", "user-add", "operator", "cli", user="bob")
    assert (folder / "audit.log").stat().st_uid == 4321


def test_the_operator_is_the_person_behind_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.cli.users import operator

    monkeypatch.setenv("SUDO_USER", "ada")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert operator() == "ada"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # not root: SUDO_USER is only a claim
    assert operator() != "ada"


def test_every_users_change_is_a_cli_line_without_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.cli import cli
    from emulator.cli.users import operator

    monkeypatch.setenv("EMULATE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EMULATE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SUDO_USER", raising=False)
    (tmp_path / "attendees.csv").write_text("cy,astro\ndee,,admin\n")
    printed = []
    for args in (
        ["add", "ada", "--group", "astro"],
        ["add", "bob"],
        ["token", "ada", "--rotate"],
        ["token", "ada"],  # only printed: no change, no line
        ["passwd", "bob"],
        ["admin", "ada"],
        ["import", str(tmp_path / "attendees.csv")],
        ["rm", "bob"],
    ):
        result = CliRunner().invoke(cli, ["users", *args])
        assert result.exit_code == 0, result.output
        printed.append(result.stdout)
    entries = _lines(tmp_path / "state" / "audit.log")
    actions = [e["action"] for e in entries]
    assert actions == [
        "user-add",
        "user-add",
        "user-token",
        "user-password",
        "user-admin",
        "user-import",
        "user-remove",
    ], actions
    assert all(e["who"] == operator() and e["from"] == "cli" and e["outcome"] == "ok" for e in entries)
    assert entries[0]["user"] == "ada" and entries[0]["groups"] == "astro" and entries[4]["admin"] is True
    assert entries[5]["users"] == "cy,dee" and entries[5]["admins"] == 1
    written = (tmp_path / "state" / "audit.log").read_text()
    users = yaml.safe_load((tmp_path / "config" / "users.yaml").read_text())["users"]
    secrets = [u["token"] for u in users] + [w for out in printed for w in out.split() if len(w) >= 12]
    assert secrets and not [s for s in secrets if s in written]


def _portal(tmp_path: Path) -> tuple[TestClient, str]:
    """The service's app with its real sign-in parts (no engine: the portal's sign-in needs none), a throttle that
    waits from the third wrong password on (each costs a scrypt), and its audit log; ada's password."""
    users = tmp_path / "users.yaml"
    ensure_users_file(users)
    password = add_user(users, "ada", []).password
    app = create_app(Settings(), "unused", "unused")
    store = Store(tmp_path / "state.db", uncounted_types=set())
    auth = Authenticator(UsersSource(users), CallbackTokens(tmp_path / "cb.key"), SignIns(tmp_path / "si.key"), store)
    auth.throttle = SignInThrottle(limit=3)
    app.state.auth, app.state.audit = auth, AuditLog(tmp_path / "audit.log")
    return TestClient(app), password


def test_a_flood_of_sign_ins_writes_a_few_lines_and_never_a_name_that_is_no_users(tmp_path: Path) -> None:
    client, password = _portal(tmp_path)

    def sign_in(name: str, secret: str, address: str) -> int:
        form = {"username": name, "password": secret}
        return client.post("/science-portal/login", data=form, headers={"x-forwarded-for": address}).status_code

    assert sign_in("correcthorsebattery", "ada", "10.0.0.1") == 401  # a password typed in the name field
    assert sign_in("ada", "wrong", "10.0.0.2") == 401
    assert sign_in("ada", "wrong", "10.0.0.2") == 401
    assert {sign_in("ada", password, "10.0.0.2") for _ in range(50)} == {429}  # its owner too waits
    assert {sign_in(f"guess{n}", "x", "10.0.0.2") for n in range(50)} == {429}  # made-up names from there
    assert {sign_in("", "", "10.0.0.3") for _ in range(50)} == {401, 429}  # empty forms: no scrypt, throttled too
    path = tmp_path / "audit.log"
    lines = [(e["user"], e["from"], e["outcome"], e["count"]) for e in _lines(path)]
    assert lines == [
        ("(unknown user)", "10.0.0.1", "failed", 1),
        ("ada", "10.0.0.2", "failed", 1),
        ("ada", "10.0.0.2", "failed", 1),
        ("ada", "10.0.0.2", "throttled", 1),  # then one a minute, counting those since
        ("(unknown user)", "10.0.0.2", "throttled", 1),
        ("(unknown user)", "10.0.0.3", "failed", 1),
        ("(unknown user)", "10.0.0.3", "failed", 1),
        ("(unknown user)", "10.0.0.3", "throttled", 1),
    ]
    assert "correcthorsebattery" not in path.read_text() and "guess" not in path.read_text()
    counted = client.app.state.metrics.registry.get_sample_value  # type: ignore[attr-defined]
    assert counted("skaha_emulator_signin_failures_total", {"reason": "throttled"}) == 148
    assert counted("skaha_emulator_signin_failures_total", {"reason": "wrong-password"}) == 5
