"""A session saved as an image on Docker Engine: its container's own layer, under the configuration of the image
it runs, never the container's.

`docker commit` alone cannot do that. The engine merges the container's configuration into whatever the
commit is given (every environment variable the container has and the request does not name is kept), and
keeps the container's whole configuration in the image besides (`container_config`). A session's is its own:
its token, its owner's uid, its HOME under /arc. So the commit only makes the layer: the new image is that
commit's layers under a configuration written here from the original image's, loaded as an image archive that
holds the configuration alone. Docker's image store takes a layer it already holds from itself and reads no
file for it, so the archive is a few kilobytes whatever the image's size, and the layers stay shared with the
original image. The commit's own image is removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors

from emulator.errors import EngineRefused
from emulator.runtime.base import SnapshotRequest


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def history_entries(listed: list[dict[str, Any]], layers: int) -> list[dict[str, Any]]:
    """The image's history as its configuration holds it, from the engine's history listing (newest first). The
    listing does not say which entries made a layer, only their sizes; when the entries with a size do not match
    the layers one for one (a layer of empty folders has none), the history is left out rather than misdrawn."""
    entries = []
    for item in reversed(listed):
        entry: dict[str, Any] = {"created": _when(datetime.fromtimestamp(int(item.get("Created") or 0), UTC))}
        if item.get("CreatedBy"):
            entry["created_by"] = item["CreatedBy"]
        if item.get("Comment"):
            entry["comment"] = item["Comment"]
        if not item.get("Size"):
            entry["empty_layer"] = True
        entries.append(entry)
    with_layers = sum(1 for entry in entries if not entry.get("empty_layer"))
    return entries if with_layers == layers else []


def snapshot_config(
    original: dict[str, Any],
    history: list[dict[str, Any]],
    diff_ids: list[str],
    request: SnapshotRequest,
    created: datetime,
) -> dict[str, Any]:
    """The new image's configuration: the original image's (as the engine's inspect gives it), with the
    request's labels, over `diff_ids` (the original's layers and the container's)."""
    config = dict(original.get("Config") or {})
    config["Labels"] = dict(request.labels)
    document: dict[str, Any] = {
        "architecture": original.get("Architecture") or "amd64",
        "os": original.get("Os") or "linux",
        "created": _when(created),
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [
            *history_entries(history, len(diff_ids) - 1),
            {"created": _when(created), "created_by": request.note, "comment": "emulate snapshot"},
        ],
    }
    if original.get("Variant"):
        document["variant"] = original["Variant"]
    return document


def config_archive(config: dict[str, Any], name: str) -> bytes:
    """An image archive (`docker save`'s format) holding the configuration and no layer: the engine has them."""
    raw = json.dumps(config, separators=(",", ":")).encode()
    config_file = f"{hashlib.sha256(raw).hexdigest()}.json"
    layers = [f"{index}/layer.tar" for index, _ in enumerate(config["rootfs"]["diff_ids"])]
    manifest = json.dumps([{"Config": config_file, "RepoTags": [name], "Layers": layers}]).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member, data in ((config_file, raw), ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _tagged_image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str(client.api.inspect_image(name)["Id"])
    except docker.errors.NotFound:
        return None


def save_snapshot(client: docker.DockerClient, request: SnapshotRequest, created: datetime) -> str:
    """Commit the container (paused meanwhile, so its files are copied as of one moment), load the new image under
    the request's name, and remove the commit's image and the one the name had before, if nothing else uses it.
    Returns the new image's id."""
    api = client.api
    original = api.inspect_image(request.image_id)
    history = api.history(request.image_id)
    before = _tagged_image_id(client, request.name)
    committed = str(api.commit(request.container, pause=True)["Id"])
    try:
        diff_ids = api.inspect_image(committed)["RootFS"]["Layers"]
        config = snapshot_config(original, history, diff_ids, request, created)
        try:
            client.images.load(config_archive(config, request.name))
        except docker.errors.ImageLoadError as exc:
            raise EngineRefused(f"the engine would not take the snapshot's image: {exc}") from exc
    finally:
        with suppress(docker.errors.APIError):
            api.remove_image(committed, noprune=True)  # its layers stay: the new image holds them
    made = _tagged_image_id(client, request.name)
    if made is None:
        raise EngineRefused(f"the engine loaded the snapshot, but {request.name} is not there")
    if before is not None and before != made:
        with suppress(docker.errors.APIError):  # a session still runs it, or the operator gave it another name
            api.remove_image(before, noprune=True)
    return made
