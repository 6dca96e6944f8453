"""A whole platform instance of the test suite's own, and what tests ask of it.

`Instance` wraps instance `pytest` (started by the `platform` fixture in conftest.py): its
API as an httpx client, the `emulate` command, and what exists in Docker and SQLite for it.
`start_instance` and `stop_instance` bring up and take down any instance of the suite's own;
`Person` is a user of a signed-in instance. conftest.py holds only the fixtures.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from emulator import labels, naming
from emulator.layout import Layout
from emulator.settings import Settings

# EMULATE_TEST_INSTANCE: another name, so two checkouts' suites can run on one engine at once; each of
# pytest-xdist's workers (`make test` runs two) has its own instance too.
INSTANCE = (os.environ.get("EMULATE_TEST_INSTANCE") or "pytest") + (
    f"-{os.environ['PYTEST_XDIST_WORKER']}" if os.environ.get("PYTEST_XDIST_WORKER") else ""
)
PREFIX = Settings(instance=INSTANCE).prefix  # what instance `pytest` names its containers and networks with
SERVICE = naming.service_container(PREFIX)
GATEWAY = naming.gateway_container(PREFIX)
NETWORK = Settings(instance=INSTANCE).network  # the instance's own network, the service's and the gateway's
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class LocalhostNames(httpx.HTTPTransport):
    """Any `*.localhost` name is loopback, as browsers take it (RFC 6761) and this machine's resolver does not:
    the request goes to 127.0.0.1 with its Host header, its cookies' host and its TLS server name unchanged."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".localhost"):
            request = httpx.Request(
                request.method,
                request.url.copy_with(host="127.0.0.1"),
                headers=request.headers,
                stream=request.stream,
                extensions={**request.extensions, "sni_hostname": request.url.host},
            )
        return super().handle_request(request)


def localhost_client(**kwargs: Any) -> httpx.Client:
    """An httpx client that reaches session hosts (`<id>.localhost`) as a browser does."""
    return httpx.Client(transport=LocalhostNames(verify=kwargs.pop("verify", True)), timeout=30, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def remove_instance(client: docker.DockerClient, instance: str = INSTANCE) -> None:
    label = f"{labels.INSTANCE}={instance}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True, v=True)
    for network in client.networks.list(filters={"label": label}):
        network.remove()


@dataclass
class Instance:
    url: str
    token: str
    env: dict[str, str]
    root: Path
    docker: docker.DockerClient
    verify: str | bool = True  # an HTTPS instance's CA file
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        # One connection per request, as curl makes: the gateway closes idle keep-alive
        # connections on every route change, which only clients that retry (browsers) absorb.
        self.http = httpx.Client(
            verify=self.verify,
            base_url=f"{self.url}/skaha/v0",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def session_host(self, session_id: str) -> str:
        """A session's own origin, as its connect URL has it."""
        return self.url.replace("://127.0.0.1:", f"://{session_id}.localhost:", 1)

    @property
    def label(self) -> str:
        return f"{labels.INSTANCE}={self.env['EMULATE_INSTANCE']}"

    @property
    def prefix(self) -> str:
        """What this instance names its containers and networks with."""
        return Settings(instance=self.env["EMULATE_INSTANCE"]).prefix

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def arc_dir(self) -> Path:
        return self.root / "arc"

    @property
    def users_file(self) -> Path:
        return Layout.from_environment(environ=self.env).users_file

    def emulate(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "emulator", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"emulate {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    # --- API helpers ----------------------------------------------------------------------

    def launch(self, name: str = "test", wait: bool = True, **params: Any) -> str:
        data = {"name": name, "image": "skaha-emulator/notebook:latest", "type": "notebook", **params}
        response = self.http.post("/session", data=data)
        assert response.status_code == 200, response.text
        session_id = response.text.strip()
        if wait:
            self.wait_status(session_id, "Running")
        return session_id

    def job(self, name: str = "job", **params: Any) -> str:
        """Launch a headless job (cmd, args, env, ram… as skaha takes them) without waiting; its id."""
        return self.launch(name, wait=False, type="headless", **params)

    def session(self, session_id: str) -> dict[str, Any]:
        response = self.http.get(f"/session/{session_id}")
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()
        return session

    def wait_status(self, session_id: str, wanted: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            session = self.session(session_id)
            if session["status"] == wanted:
                return session
            if time.monotonic() > deadline:
                events = self.http.get(f"/session/{session_id}", params={"view": "events"}).text
                raise AssertionError(f"{session_id} is {session['status']}, not {wanted}:\n{events}")
            time.sleep(0.1)

    def wait_gone(self, session_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.http.get(f"/session/{session_id}").status_code != 404:
            assert time.monotonic() < deadline, f"{session_id} still exists"
            time.sleep(0.2)

    def restart_service(self, timeout: float = 60) -> None:
        """Restart the service's container and wait until it answers again (its start-up, reconciliation included,
        runs before it does): what it kept in memory alone (the sign-in throttle, metrics counters) is gone."""
        self.docker.containers.get(naming.service_container(self.prefix)).restart()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/skaha/availability", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not come back"
            time.sleep(0.2)

    def delete_all(self) -> None:
        for session in self.http.get("/session").json():
            self.http.delete(f"/session/{session['id']}")

    # --- what exists ----------------------------------------------------------------------

    def session_containers(self) -> list[Any]:
        found: list[Any] = self.docker.containers.list(
            all=True, filters={"label": [self.label, f"{labels.ROLE}={labels.ROLE_SESSION}"]}
        )
        return found

    def container(self, session_id: str) -> Any:
        (found,) = self.docker.containers.list(
            all=True, filters={"label": [self.label, f"{labels.ROW_ID}={session_id}"]}
        )
        return found

    def gateway_config(self) -> Any:
        """The configuration Caddy runs now, read through its admin socket."""
        transport = httpx.HTTPTransport(uds=str(self.state_dir / "gateway" / "admin.sock"))
        with httpx.Client(transport=transport, base_url="http://gateway-admin") as admin:
            return admin.get("/config/").json()

    def route_ids(self) -> list[str]:
        """The gateway's route ids; none while it is (re)starting and its admin socket is not there yet."""
        try:
            config = self.gateway_config()
        except httpx.TransportError:
            return []
        return [r["@id"] for r in config["apps"]["http"]["servers"]["gateway"]["routes"]]

    def answers(self, session_id: str, path: str = "api") -> int:
        """The status a request for a notebook session's path gets through the gateway."""
        return httpx.get(f"{self.url}/session/notebook/{session_id}/{path}", timeout=10).status_code

    def rows(self) -> list[str]:
        with sqlite3.connect(self.state_dir / "state.db") as db:
            return [row[0] for row in db.execute("SELECT id FROM sessions")]

    def sql(self, statement: str, *args: Any) -> None:
        with sqlite3.connect(self.state_dir / "state.db") as db:
            db.execute(statement, args)

    def exec(self, session_id: str, command: str, user: bool = True) -> str:
        container = self.container(session_id)
        result = container.exec_run(["sh", "-c", command], user="" if user else "0")
        output: str = result.output.decode(errors="replace")
        assert result.exit_code == 0, f"{command!r} exited {result.exit_code}: {output}"
        return output

    def service_logs(self) -> str:
        """The service's log tail and the state of every container of the instance (for failure reports)."""
        lines = []
        for c in self.docker.containers.list(all=True, filters={"label": self.label}):
            lines.append(f"{c.name}: {c.status} (exit {c.attrs['State'].get('ExitCode')}) {c.attrs['Config']['Cmd']}")
            if c.labels.get(labels.ROLE) != labels.ROLE_SERVICE:
                lines.append("    " + c.logs(tail=5).decode(errors="replace").replace("\n", "\n    "))
        try:
            service = self.docker.containers.get(naming.service_container(self.prefix))
            lines.append(service.logs(tail=60).decode(errors="replace"))
        except docker.errors.NotFound:
            lines.append("(no service container)")
        try:  # every user's newest events (the API shows only the caller's)
            with sqlite3.connect(self.state_dir / "state.db") as db:
                rows = db.execute("SELECT session_id, reason, message FROM events ORDER BY id DESC LIMIT 20").fetchall()
            lines += ["newest events:", *(f"    {s} {r}: {m}" for s, r, m in reversed(rows))]
        except sqlite3.Error as exc:
            lines.append(f"(no events: {exc})")
        return "\n".join(lines)


def start_instance(
    root: Path,
    instance: str,
    docker_client: docker.DockerClient,
    *up: str,
    settings: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> Instance:
    """An instance of the suite's own (`emulate up --no-build *up`) on a free port, with its own folders
    (and any EMULATE_* `settings` of its own, DOCKER_HOST among them), reached at `host`."""
    remove_instance(docker_client, instance)  # what a crashed earlier run left
    port = free_port()
    env = {
        **os.environ,
        "EMULATE_INSTANCE": instance,
        "EMULATE_PORT": str(port),
        "EMULATE_STATE_DIR": str(root / "state"),
        "EMULATE_CONFIG_DIR": str(root / "config"),
        "EMULATE_ARC_DIR": str(root / "arc"),
        "EMULATE_LOOP_INTERVAL": "0.5",
        **(settings or {}),
    }
    env.pop("EMULATE_URL", None)
    env.pop("EMULATE_TOKEN", None)
    scheme = "https" if "--tls" in up else "http"
    first = Instance(url=f"{scheme}://{host}:{port}", token="", env=env, root=root, docker=docker_client)
    first.emulate("up", "--no-build", *(("--host", host) if host != "127.0.0.1" else ()), *up)
    token = first.emulate("token").stdout.strip()
    ca = root / "state" / "gateway-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    verify = str(ca) if scheme == "https" else True
    return Instance(url=first.url, token=token, env=env, root=root, docker=docker_client, verify=verify)


def stop_instance(instance: Instance, docker_client: docker.DockerClient) -> None:
    instance.emulate("down", "--remove-sessions", check=False)
    left = [c.name for c in docker_client.containers.list(all=True, filters={"label": instance.label})]
    remove_instance(docker_client, instance.env["EMULATE_INSTANCE"])
    assert left == [], f"`emulate down --remove-sessions` left containers behind: {left}"


@dataclass(frozen=True)
class Person:
    name: str
    password: str
    token: str
