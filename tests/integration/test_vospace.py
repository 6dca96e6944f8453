"""Cavern's home node (`GET /arc/nodes/home/{user}`, api/vospace.py) through the gateway of the signed-in
instance: its owner's alone, its length following what the home holds."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import httpx
import pytest

from emulator.api.vospace import CORE
from emulator.core.identity import load_directory
from emulator.core.provision import ensure_home
from tests.instance import Instance, Person

pytestmark = pytest.mark.slow

NODES = "/arc/nodes/home"
MIB = 1 << 20


def _get(instance: Instance, path: str, person: Person | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {person.token}"} if person else {}
    return httpx.get(f"{instance.url}{path}", headers=headers, timeout=30)


def _properties(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(answer.content)
    assert root.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "vos:ContainerNode"
    return {str(p.get("uri")).removeprefix(f"{CORE}#"): p.text or "" for p in root[0]}


def test_the_owner_reads_her_home_node_and_its_length_grows_with_a_new_file(
    secured: Instance, people: dict[str, Person]
) -> None:
    alice = next(u for u in load_directory(secured.users_file).users if u.name == "alice")
    ensure_home(secured.arc_dir, alice)  # as her first launch makes it, where no test launched one yet
    before = _properties(_get(secured, f"{NODES}/alice", people["alice"]))
    assert int(before["quota"]) > 0 and before["date"]
    added = secured.arc_dir / "home" / "alice" / "vospace-length.bin"
    added.write_bytes(b"x" * MIB)
    os.chown(added, alice.uid, alice.gid)  # hers to delete from a session
    after = _properties(_get(secured, f"{NODES}/alice", people["alice"]))
    assert int(after["length"]) >= int(before["length"]) + MIB
    assert after["quota"] == before["quota"]


def test_anyone_else_no_token_and_bad_names_are_refused(secured: Instance, people: dict[str, Person]) -> None:
    alice, bob = people["alice"], people["bob"]
    answer = _get(secured, f"{NODES}/alice")
    assert answer.status_code == 401 and answer.text == "Unauthorized\n"
    assert _get(secured, f"{NODES}/alice", Person("x", "x", "not-a-token")).status_code == 401
    answer = _get(secured, f"{NODES}/alice", bob)  # same group, still not his
    assert answer.status_code == 403 and "PermissionDenied" in answer.text
    assert _get(secured, f"{NODES}/nobody", bob).status_code == 403  # says nothing of who exists
    for name in ("Alice", "x" * 200, ".alice", "alice%2f..%2fbob", "..%2fbob", "%2e%2e", "alice%00"):
        answer = _get(secured, f"{NODES}/{name}", alice)
        assert answer.status_code in (400, 404), (name, answer.status_code, answer.text)
        assert "vos:node" not in answer.text
    # Only the nodes are the service's: nothing else under /arc is served.
    assert "nothing is served" in _get(secured, "/arc/home/alice", alice).text
