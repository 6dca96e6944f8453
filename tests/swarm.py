"""A Docker Swarm of several engines on this one machine, for the swarm tests and benchmarks.

Privileged containers cannot start here, so no Docker-in-Docker: each node is a `dockerd` of its own in a
network namespace of its own (entered with nsenter, which keeps /sys and the cgroup mounts; `ip netns exec`
would remount /sys), with its own data root, exec root, socket and host name, and the namespaces are joined
by a bridge on the host. The host engine drops forwarded traffic, so one DOCKER-USER rule accepts traffic
within that bridge. Test traffic stays inside the namespaces and on the bridge.

Everything carries the prefix `emuswarm`: a run that crashed is cleared by the next one. The nodes' data
roots (their image layers) stay between runs as a cache, so loading images is quick the second time; their
swarm state, containers and networks do not.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker

PREFIX = "emuswarm"
BRIDGE = f"{PREFIX}0"
NETWORK = "192.168.231"  # the bridge's /24: outside Docker's pools and the users' 198.18/16
CACHE = Path("/var/lib") / PREFIX  # the nodes' data roots: image layers, kept between runs
RUN = Path("/run") / PREFIX
RULE = ["DOCKER-USER", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=check)


class NoSuchName:
    """The machines' name server, on the bridge: it knows no name (NXDOMAIN at once), as a real one answers
    for the names it lacks. Without one, a container's lookup of a session not yet announced to its
    machine's DNS is forwarded outside, where nothing answers, and waits out its timeouts."""

    def __init__(self, address: str) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((address, 53))
        threading.Thread(target=self._serve, name="no-such-name", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                query, client = self._socket.recvfrom(512)
            except OSError:
                return  # closed
            if len(query) < 12:
                continue
            # The query's id and question, flags QR RD RA with rcode 3 (NXDOMAIN), no answers.
            answer = query[:2] + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0) + _question(query)
            with contextlib.suppress(OSError):
                self._socket.sendto(answer, client)

    def close(self) -> None:
        self._socket.close()


def _question(query: bytes) -> bytes:
    end = 12
    while end < len(query) and query[end] != 0:
        end += query[end] + 1
    return query[12 : end + 5]  # the name, its terminating zero, type and class


@dataclass
class Node:
    index: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"{PREFIX}-node{self.index}"

    @property
    def address(self) -> str:
        return f"{NETWORK}.{10 + self.index}"

    @property
    def netns(self) -> str:
        return f"/var/run/netns/{self.name}"

    @property
    def socket(self) -> str:
        return str(RUN / f"{self.name}.sock")

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=120)


@dataclass
class SwarmCluster:
    size: int = 3
    extra: dict[int, list[str]] = field(default_factory=dict)  # more dockerd options, by node index
    nodes: list[Node] = field(default_factory=list)
    dns: NoSuchName | None = None

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def start(self) -> SwarmCluster:
        clear()
        try:
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
            _run("ip", "addr", "add", f"{NETWORK}.1/24", "dev", BRIDGE)
            _run("ip", "link", "set", BRIDGE, "up")
            _run("iptables", "-I", *RULE)
            self.dns = NoSuchName(f"{NETWORK}.1")
            RUN.mkdir(parents=True, exist_ok=True)
            self.nodes = [Node(i) for i in range(1, self.size + 1)]
            for node in self.nodes:
                self._start_node(node)
            for node in self.nodes:
                _wait_engine(node)
                _reset(node)
            manager = self.manager.client()
            manager.swarm.init(advertise_addr=self.manager.address, listen_addr=f"{self.manager.address}:2377")
            token = manager.swarm.attrs["JoinTokens"]["Worker"]
            for node in self.nodes[1:]:
                node.client().swarm.join(
                    remote_addrs=[f"{self.manager.address}:2377"], join_token=token, advertise_addr=node.address
                )
            deadline = time.monotonic() + 60
            while sum(n.attrs["Status"]["State"] == "ready" for n in manager.nodes.list()) < self.size:
                assert time.monotonic() < deadline, "the swarm's nodes did not all become ready"
                time.sleep(0.5)
        except BaseException:
            self.close()
            raise
        return self

    def _start_node(self, node: Node) -> None:
        _run("ip", "netns", "add", node.name)
        veth = f"{PREFIX}v{node.index}"
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", node.name)
        _run("ip", "link", "set", veth, "master", BRIDGE, "up")
        inside = ["nsenter", f"--net={node.netns}"]
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "addr", "add", f"{node.address}/24", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        data, execroot = CACHE / node.name, RUN / node.name
        data.mkdir(parents=True, exist_ok=True)
        execroot.mkdir(parents=True, exist_ok=True)
        dockerd = (
            f"hostname {node.name} && exec dockerd --data-root {data} --exec-root {execroot} "
            f"--pidfile {RUN / node.name}.pid -H {node.docker_host} --no-new-privileges --dns {NETWORK}.1 "
            + " ".join(shlex.quote(arg) for arg in self.extra.get(node.index, []))
        )
        log = open(RUN / f"{node.name}.log", "wb")  # noqa: SIM115 (the engine's log, as long as it runs)
        node.process = subprocess.Popen(
            [*inside, "unshare", "--uts", "sh", "-c", dockerd], stdout=log, stderr=subprocess.STDOUT
        )

    def load(self, images: list[str], nodes: list[Node] | None = None) -> None:
        """Put local images on nodes (all by default), as `docker save | docker load` (no registry needed)."""
        with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-images-") as folder:
            archive = Path(folder) / "images.tar"
            _run("docker", "save", "-o", str(archive), *images)  # one archive: shared layers once

            def load(node: Node) -> None:
                with archive.open("rb") as source:
                    node.client().images.load(source)

            with ThreadPoolExecutor(max_workers=self.size) as pool:
                list(pool.map(load, nodes or self.nodes))

    def stop_node(self, node: Node) -> None:
        """The machine goes away: its engine, its containerd and every process of its containers die at once."""
        assert node.process is not None
        running = [c.id for c in node.client().containers.list()]
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()
        _stop_containerd(node)
        for container in running:  # their shims are gone: nothing else would end them
            for procs in Path("/sys/fs/cgroup").glob(f"*/docker/{container}/cgroup.procs"):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)

    def close(self) -> None:
        for node in reversed(self.nodes):
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(Exception):
                    _reset(node)
        self.nodes = []
        if self.dns is not None:
            self.dns.close()
            self.dns = None
        clear()


def _wait_engine(node: Node, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if node.client().ping():
                return
        assert node.process is None or node.process.poll() is None, (RUN / f"{node.name}.log").read_text()[-2000:]
        time.sleep(0.2)
    raise AssertionError(f"{node.name}'s engine did not answer within {timeout} s")


def _reset(node: Node) -> None:
    """What a crashed run left in a node's cached data root: its containers, its volumes, its swarm."""
    client = node.client()
    for container in client.containers.list(all=True):
        container.remove(force=True, v=True)
    client.volumes.prune()
    if client.info()["Swarm"]["LocalNodeState"] != "inactive":
        client.swarm.leave(force=True)


def _stop_containerd(node: Node) -> None:
    """The containerd (and shims) a killed engine leaves running: a lost machine's processes are gone too."""
    found = _run("pgrep", "-f", str(RUN / node.name), check=False).stdout.split()
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def clear() -> None:
    """Remove every engine, namespace, link, rule and run folder of this harness (a crashed run's too); the
    data roots' swarm state and networks go, their image layers stay (containers go at the next start)."""
    for pidfile in RUN.glob("*.pid") if RUN.exists() else []:
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _run("pgrep", "-f", f"dockerd --data-root {CACHE}", check=False).stdout.strip():
        if time.monotonic() > deadline:
            _run("pkill", "-9", "-f", f"dockerd --data-root {CACHE}", check=False)
            break
        time.sleep(0.2)
    _run("pkill", "-9", "-f", f"containerd.*{RUN}", check=False)
    for node_root in CACHE.glob(f"{PREFIX}-node*") if CACHE.exists() else []:
        for stale in ("swarm", "network"):
            shutil.rmtree(node_root / stale, ignore_errors=True)
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(RUN) in line]
    for mount in sorted(mounts, key=len, reverse=True):
        _run("umount", "-l", mount, check=False)
    shutil.rmtree(RUN, ignore_errors=True)
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            _run("ip", "netns", "del", name, check=False)
    _run("ip", "link", "del", BRIDGE, check=False)
    while _run("iptables", "-C", *RULE, check=False).returncode == 0:
        _run("iptables", "-D", *RULE)
