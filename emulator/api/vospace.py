"""The home storage node CANFAR's Science Portal 2.0 reads: `GET /arc/nodes/home/{user}`, as Cavern (the
VOSpace service over CANFAR's /arc) answers it.

Only what that portal reads is served: the user's home as a VOSpace 2.0 ContainerNode whose root properties
give the bytes used, the quota and the date, and an empty child listing (the files stay the sessions' business).
The owner alone may read it, by their API token or a session's token acting as them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from emulator.api.deps import CurrentUser, Manager
from emulator.api.storage import Storage, home_storage
from emulator.errors import Forbidden, NotFound

router = APIRouter(prefix="/arc/nodes")

VOSPACE = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CORE = "ivo://ivoa.net/vospace/core"
# Cavern's nodes are vos://cadc.nrc.ca~arc/home/<user>; ours name a local authority, never CANFAR's.
AUTHORITY = "vos://skaha-emulator~arc"
# The users file's own rule (users/file.py): no '/', no leading '.', at most 32 characters.
USER_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
MEDIA_TYPE = "text/xml"  # what Cavern (cadc-vos-server) sends a node in

ET.register_namespace("vos", VOSPACE)  # the portal reads `<vos:property …>` and `<vos:nodes` as text
ET.register_namespace("xsi", XSI)


@dataclass(frozen=True)
class HomeNode:
    user: str
    length: int  # bytes used
    quota: int  # bytes
    date: datetime  # when the home last changed (UTC)


def node_xml(node: HomeNode) -> bytes:
    """The node as a VOSpace 2.0 document: the root's properties, then an empty listing."""
    root = ET.Element(
        f"{{{VOSPACE}}}node",
        {"uri": f"{AUTHORITY}/home/{node.user}", f"{{{XSI}}}type": "vos:ContainerNode"},
    )
    properties = ET.SubElement(root, f"{{{VOSPACE}}}properties")
    for name, value in (
        ("length", str(node.length)),
        ("quota", str(node.quota)),
        ("date", ivoa_time(node.date)),
    ):
        ET.SubElement(properties, f"{{{VOSPACE}}}property", {"uri": f"{CORE}#{name}"}).text = value
    ET.SubElement(root, f"{{{VOSPACE}}}nodes")
    document: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return document


def ivoa_time(when: datetime) -> str:
    """IVOA's form of a time (UTC, milliseconds, no zone), as Cavern writes #date."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def home_node(user: str, home: Path, storage: Storage) -> HomeNode:
    """The figures our own portal shows, as the node's: the quota is the user's home quota where the server
    keeps one, else the size of the disk under /arc."""
    try:
        changed = datetime.fromtimestamp(home.stat().st_mtime, UTC)
    except OSError:  # no home yet: made on the first launch
        changed = datetime.now(UTC)
    return HomeNode(user, storage.used_bytes, storage.quota_bytes or storage.total_bytes, changed)


@router.get("/home/{user}", response_class=Response, responses={200: {"content": {MEDIA_TYPE: {}}}})
async def home(user: str, request: Request, caller: CurrentUser, manager: Manager) -> Response:
    """The caller's own home node; anyone else's is refused without saying whether it exists."""
    if not USER_NAME.fullmatch(user):
        raise NotFound("NodeNotFound: no such node (a user name is a-z, 0-9, '_', '.', '-'; up to 32)")
    if user != caller.name:
        raise Forbidden("PermissionDenied: a home node is its owner's alone")
    folder = manager.host_home(caller)
    quota = await manager.quotas.home_use(caller.name) if manager.quotas.enabled else None
    storage = await run_in_threadpool(home_storage, folder, request.app.state.settings.layout.arc_path, quota)
    node = await run_in_threadpool(home_node, caller.name, folder, storage)
    return Response(node_xml(node), media_type=MEDIA_TYPE)
