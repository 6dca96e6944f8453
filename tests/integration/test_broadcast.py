"""The message to the room over the API and `emulate broadcast`, on the signed-in instance (boss is an admin):
who may set, read and clear it, its bounds in words, and the audit log's lines."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.instance import Instance, Person

pytestmark = pytest.mark.slow


def _api(instance: Instance, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{instance.url}/skaha/v1", headers=headers, timeout=30)


@pytest.fixture
def room(secured: Instance, people: dict[str, Person]) -> Iterator[dict[str, httpx.Client]]:
    """Each person's API client; no message before the test, none after it."""
    clients = {name: _api(secured, person.token) for name, person in people.items()}
    clients["boss"].delete("/admin/broadcast")
    yield clients
    clients["boss"].delete("/admin/broadcast")


def _audit(instance: Instance, action: str) -> list[dict[str, object]]:
    lines = (instance.state_dir / "audit.log").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry["action"] == action]


def test_an_admin_sets_and_clears_the_message_and_everyone_reads_it(
    secured: Instance, room: dict[str, httpx.Client]
) -> None:
    boss, alice = room["boss"], room["alice"]
    assert alice.get("/broadcast").status_code == 204
    answer = boss.put("/admin/broadcast", data={"text": "  We restart at 14:00 <b>sharp</b> "})
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert shown["text"] == "We restart at 14:00 <b>sharp</b>" and shown["setBy"] == "boss"
    assert alice.get("/broadcast").json() == shown  # anyone signed in reads it, as it was set
    assert boss.post("/admin/broadcast", params={"text": "We restart at 15:00"}).json()["text"] == "We restart at 15:00"
    assert room["eve"].get("/broadcast").json()["text"] == "We restart at 15:00"
    assert boss.delete("/admin/broadcast").json() == {"cleared": True}
    assert boss.delete("/admin/broadcast").json() == {"cleared": False}
    assert alice.get("/broadcast").status_code == 204
    said = _audit(secured, "broadcast")[-2:]
    assert [(e["who"], e["text"]) for e in said] == [("boss", shown["text"]), ("boss", "We restart at 15:00")]
    assert [e["cleared"] for e in _audit(secured, "broadcast-clear")[-2:]] == [True, False]


def test_only_an_admin_sets_or_clears_it_and_only_a_known_caller_reads_it(
    secured: Instance, room: dict[str, httpx.Client]
) -> None:
    room["boss"].put("/admin/broadcast", data={"text": "kept"})
    for method in ("PUT", "POST", "DELETE"):
        refused = room["alice"].request(method, "/admin/broadcast", data={"text": "mine"})
        assert refused.status_code == 403 and refused.text.startswith("admins only"), (method, refused.text)
        assert _api(secured, None).request(method, "/admin/broadcast").status_code == 401
    assert _api(secured, None).get("/broadcast").status_code == 401
    assert room["alice"].get("/broadcast").json()["text"] == "kept"


def test_a_message_out_of_bounds_is_one_clear_400_and_changes_nothing(room: dict[str, httpx.Client]) -> None:
    boss = room["boss"]
    boss.put("/admin/broadcast", data={"text": "kept"})
    for text, words in (
        ("", "the message is empty"),
        ("x" * 501, "the message has 501 characters; at most 500"),
        ("two\nlines", "U+000A"),
    ):
        answer = boss.put("/admin/broadcast", data={"text": text})
        assert answer.status_code == 400 and words in answer.text and answer.text.count("\n") == 1, answer.text
    assert boss.put("/admin/broadcast").status_code == 400  # no text at all
    assert boss.get("/broadcast").json()["text"] == "kept"
    assert boss.put("/admin/broadcast", data={"text": "é" * 500}).status_code == 200


def test_emulate_broadcast_sets_prints_and_clears_it_as_the_first_admin(
    secured: Instance, people: dict[str, Person], room: dict[str, httpx.Client]
) -> None:
    said = secured.emulate("broadcast", "We", "restart", "at", "14:00")
    assert said.stdout.strip() == "shown on every dashboard: We restart at 14:00"
    assert room["alice"].get("/broadcast").json()["text"] == "We restart at 14:00"
    shown = secured.emulate("broadcast")
    assert shown.stdout == "We restart at 14:00\n" and shown.stderr.startswith("(set by ")
    both = secured.emulate("broadcast", "x", "--clear", check=False)
    assert both.returncode == 1 and both.stderr.strip() == "error: give the message or --clear, not both"
    as_alice = subprocess.run(
        [sys.executable, "-m", "emulator", "broadcast", "mine"],
        env={**secured.env, "EMULATE_TOKEN": people["alice"].token},  # EMULATE_TOKEN speaks for whoever it names
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert as_alice.returncode == 1 and as_alice.stderr.startswith("error: admins only"), as_alice.stderr
    assert secured.emulate("broadcast", "--clear").stdout.strip() == "the message to the room is taken down"
    assert room["alice"].get("/broadcast").status_code == 204
    nothing = secured.emulate("broadcast")
    assert nothing.stdout == "" and "no message to the room" in nothing.stderr
