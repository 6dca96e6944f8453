"""A real registry for the tests: Debian's `docker-registry` (the CNCF distribution server) on a
loopback port, open or behind htpasswd, and a throttling relay in front of it that can be cut
mid-pull. Docker treats 127.0.0.0/8 registries as insecure, so plain HTTP works unconfigured."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path

import bcrypt
import docker
import httpx

from tests.instance import free_port

REGISTRY_BINARY = "docker-registry"


class Registry:
    def __init__(self, root: Path, users: dict[str, str] | None = None) -> None:
        if shutil.which(REGISTRY_BINARY) is None:
            raise RuntimeError("these tests need Debian's docker-registry package (apt-get install docker-registry)")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.users = users or {}
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / "registry.log"
        config = root / "config.yml"
        auth = ""
        if self.users:
            htpasswd = root / "htpasswd"
            htpasswd.write_text(
                "".join(
                    f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                    for u, p in self.users.items()
                )
            )
            auth = f"auth:\n  htpasswd:\n    realm: tests\n    path: {htpasswd}\n"
        config.write_text(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n{auth}"
        )
        self._log_file = self.log.open("w")
        self._process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)], stdout=self._log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://{self.host}/v2/", timeout=1).status_code in (200, 401):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"the registry did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._log_file.close()

    def tag_lookups(self, repository: str, tag: str) -> int:
        """How many times the registry was asked what a tag names (each pull asks once), from its access log."""
        asked = (f'"HEAD /v2/{repository}/manifests/{tag} ', f'"GET /v2/{repository}/manifests/{tag} ')
        return sum(1 for line in self.log.read_text().splitlines() if any(a in line for a in asked))

    def push(self, client: docker.DockerClient, local: str, repository: str, tag: str, user: str = "") -> str:
        """Push a local image under this registry's name; returns that name."""
        name = f"{self.host}/{repository}"
        client.images.get(local).tag(name, tag)
        auth = {"username": user, "password": self.users[user]} if user else None
        for chunk in client.api.push(name, tag, stream=True, decode=True, auth_config=auth):
            if "error" in chunk:
                raise RuntimeError(f"push of {name}:{tag} failed: {chunk['error']}")
        return f"{name}:{tag}"


def unique_image(
    client: docker.DockerClient, tag: str, payload_bytes: int = 4096, session_type: str = "headless"
) -> str:
    """A small image of its own (a layer of random bytes nobody else has, on debian:bookworm-slim), so
    pulling it really moves a layer."""
    dockerfile = (
        "FROM debian:bookworm-slim\n"
        "COPY payload /payload\n"
        f'LABEL io.canfar.skaha.session.type="{session_type}"\n'
        'CMD ["sh", "-c", "echo pulled job ran"]\n'
    )
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for name, data in (("Dockerfile", dockerfile.encode()), ("payload", os.urandom(payload_bytes))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, labels={"test.run": uuid.uuid4().hex})
    return tag


class CuttableRelay:
    """A TCP relay to the registry that sends its answers at `rate` bytes/s, and can be cut (every
    connection closed and the port no longer answering: a registry gone mid-pull) or frozen
    (connections kept open with nothing sent: a registry gone silent)."""

    def __init__(self, upstream_port: int, rate: int) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._upstream = upstream_port
        self._rate = rate
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._cut = threading.Event()
        self._frozen = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._cut.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream))
            except OSError:  # the registry behind is gone (stopped by its test): this connection is refused
                client.close()
                continue
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, 0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self._rate), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, rate: int) -> None:
        try:
            while not self._cut.is_set():
                data = source.recv(16384)
                if not data:
                    break
                while self._frozen.is_set() and not self._cut.is_set():
                    time.sleep(0.05)  # holds the connection open and sends nothing: a registry gone silent
                target.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        self._frozen.set()

    def cut(self) -> None:
        self._cut.set()
        self._listener.close()
        for end in self._sockets:
            try:
                end.shutdown(socket.SHUT_RDWR)
                end.close()
            except OSError:
                pass
