"""The home node's wire format (api/vospace.py), read back as CANFAR's Science Portal 2.0 reads it, and the
storage figure's cache seeing a new file at once."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from emulator.api.storage import Storage, home_storage
from emulator.api.vospace import CORE, USER_NAME, VOSPACE, HomeNode, home_node, node_xml
from emulator.gateway.caddy import SERVICE_PATHS

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
WHEN = datetime(2026, 12, 3, 17, 5, 9, 123456, tzinfo=UTC)


def _portal_properties(document: str) -> dict[str, str]:
    """What the portal reads: the root's properties, in the text before the first `<vos:nodes`."""
    head = document.split("<vos:nodes", 1)[0]
    found = re.findall(r'<vos:property uri="ivo://ivoa\.net/vospace/core#(\w+)">([^<]*)</vos:property>', head)
    return dict(found)


def test_the_node_is_a_vospace_container_with_length_quota_and_date_before_its_listing() -> None:
    document = node_xml(HomeNode("alice", 1234, 10 * 1024**3, WHEN))
    root = ET.fromstring(document)
    assert root.tag == f"{{{VOSPACE}}}node"
    assert root.get(XSI_TYPE) == "vos:ContainerNode"
    assert root.get("uri") == "vos://skaha-emulator~arc/home/alice"
    assert [child.tag for child in root] == [f"{{{VOSPACE}}}properties", f"{{{VOSPACE}}}nodes"]
    assert len(root[1]) == 0  # no files listed
    properties = {p.get("uri"): p.text for p in root[0]}
    assert properties == {
        f"{CORE}#length": "1234",
        f"{CORE}#quota": str(10 * 1024**3),
        f"{CORE}#date": "2026-12-03T17:05:09.123",
    }
    text = document.decode()
    assert text.startswith("<?xml") and 'xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0"' in text
    assert _portal_properties(text) == {"length": "1234", "quota": str(10 * 1024**3), "date": "2026-12-03T17:05:09.123"}


def test_the_quota_is_the_users_home_quota_else_the_size_of_the_disk_under_arc(tmp_path: Path) -> None:
    unlimited = Storage(used_bytes=5, complete=True, free_bytes=95, total_bytes=100)
    assert home_node("alice", tmp_path, unlimited).quota == 100
    capped = Storage(used_bytes=5, complete=True, free_bytes=95, total_bytes=100, quota_bytes=50)
    node = home_node("alice", tmp_path, capped)
    assert (node.length, node.quota) == (5, 50)
    assert abs(node.date.timestamp() - tmp_path.stat().st_mtime) < 1
    assert home_node("alice", tmp_path / "not-made-yet", unlimited).date.tzinfo is UTC


def test_only_a_plain_user_name_is_a_node() -> None:
    for name in ("alice", "a.b-c_d", "_x", "a" * 32):
        assert USER_NAME.fullmatch(name), name
    for name in ("..", ".hidden", "a/b", "a%2fb", "Alice", "", "a" * 33, "a\x00", "a b"):
        assert not USER_NAME.fullmatch(name), name


def test_a_file_added_to_a_home_shows_at_once_despite_the_cache(tmp_path: Path) -> None:
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    before = home_storage(home, tmp_path).used_bytes
    (home / "data.bin").write_bytes(b"x" * 65536)
    after = home_storage(home, tmp_path).used_bytes
    assert after >= before + 65536


def test_the_gateway_sends_the_home_nodes_to_the_service() -> None:
    assert {"/arc/nodes", "/arc/nodes/*"} <= set(SERVICE_PATHS)
    assert "/arc/*" not in SERVICE_PATHS  # only the nodes: nothing else under /arc is the service's
