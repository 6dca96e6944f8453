"""What the gateway costs a request: the same session container through Caddy and directly, in the same run.

    python benchmarks/gateway.py [--seconds 3] [--rounds 3] [--clients 16] [--ws-connections 8]

Two backends, each reached directly (the container's address on its user's network, from the host) and
through the gateway (`/session/<type>/<id>/...` on the instance's port):
1. a plain backend: a `contributed` session of an image built here from `skaha-emulator/base:bookworm`
   (standard library only): an asyncio HTTP/1.1 keep-alive responder that answers "ok" to every request
   and echoes WebSocket messages (RFC 6455), so what is measured is the path, not the app;
2. JupyterLab: a notebook session's `/session/notebook/<id>/api` (it answers without a token).

HTTP is driven by wrk (C; `apt-get install wrk`), whose own cost per request is the smallest, so the
figures are the path's and not the client's: p50/p99 over one keep-alive connection, one request at a time,
for `--seconds`, and requests/s over `--clients` keep-alive connections; the sides take turns, and each
figure is the median of `--rounds`. Requests/s is also measured with `--clients` Python threads (an
httpx.Client each), the kind of client the issue's first figures came from.
Besides the published port (what people use: 127.0.0.1 goes through the engine's userland docker-proxy),
the gateway is also measured at its own container address, and its own 404 (no upstream), to tell the hops
apart. Targets (plain backend, published port): <= 0.3 ms added at p50, >= 0.9x requests/s; JupyterLab
reported. Then WebSocket ping-pong of 16-byte messages over one connection (a round trip's latency) and over
`--ws-connections` (throughput; target >= 0.8x), messages/s, from one asyncio loop speaking the frames.

Runs in its own instance (`bench-gw`, on a free port), removed afterwards with the image it built.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import docker
import httpx
from common import bench_instance, command_line, save_results

INSTANCE = "bench-gw"
NOTEBOOK = "skaha-emulator/notebook:latest"
ECHO_IMAGE = "bench-gw-echo:latest"
WS_MESSAGE = "x" * 16
DIRECT = "direct"
GATEWAY = "gateway (published port)"
GATEWAY_INSIDE = "gateway (its own address)"  # no docker-proxy: the engine's userland proxy for 127.0.0.1

# The plain backend: one asyncio Protocol per connection, no framework. HTTP/1.1 keep-alive (request
# bodies with Content-Length are read and dropped); a request with "Upgrade: websocket" gets the RFC 6455
# handshake, after which every text or binary frame comes back unmasked, pings are answered and a close
# is returned.
ECHO_SERVER = r"""
import asyncio, base64, hashlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def header(head, name):
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def frame(opcode_byte, payload):
    n = len(payload)
    if n < 126:
        return bytes((opcode_byte, n)) + payload
    if n < 65536:
        return bytes((opcode_byte, 126)) + n.to_bytes(2, "big") + payload
    return bytes((opcode_byte, 127)) + n.to_bytes(8, "big") + payload


class Connection(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer, self.websocket = transport, b"", False

    def data_received(self, data):
        self.buffer += data
        if self.websocket:
            return self.frames()
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = int(header(head, b"content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            key = header(head, b"sec-websocket-key")
            if key is not None and (header(head, b"upgrade") or b"").lower() == b"websocket":
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                self.websocket = True
                return self.frames()
            self.transport.write(OK)
            if (header(head, b"connection") or b"").lower() == b"close":
                self.transport.close()
                return

    def frames(self):
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            n, at = second & 0x7F, 2
            if n == 126:
                if len(buffer) < 4:
                    break
                n, at = int.from_bytes(buffer[2:4], "big"), 4
            elif n == 127:
                if len(buffer) < 10:
                    break
                n, at = int.from_bytes(buffer[2:10], "big"), 10
            masked = second & 0x80
            if len(buffer) < at + (4 if masked else 0) + n:
                break
            payload = buffer[at + (4 if masked else 0):at + (4 if masked else 0) + n]
            if masked and n:
                mask = (buffer[at:at + 4] * (n // 4 + 1))[:n]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
            buffer = buffer[at + (4 if masked else 0) + n:]
            opcode = first & 0x0F
            if opcode == 8:
                self.transport.write(frame(0x88, payload[:2]))
                self.transport.close()
                break
            if opcode == 9:
                self.transport.write(frame(0x8A, payload))
            elif opcode != 10:
                self.transport.write(frame(first, payload))
        self.buffer = buffer


async def main():
    server = await asyncio.get_running_loop().create_server(Connection, "0.0.0.0", 5000, backlog=1024)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"""

DOCKERFILE = """FROM skaha-emulator/base:bookworm
LABEL io.canfar.skaha.session.type=contributed
COPY echo.py /opt/echo.py
EXPOSE 5000
CMD ["python3", "-u", "/opt/echo.py"]
"""


def _build_echo(client: docker.DockerClient, root: Path) -> None:
    context = root / "echo-image"
    context.mkdir()
    (context / "echo.py").write_text(ECHO_SERVER)
    (context / "Dockerfile").write_text(DOCKERFILE)
    os.chmod(context / "echo.py", 0o644)  # the session runs as the user's uid
    client.images.build(path=str(context), tag=ECHO_IMAGE, rm=True, pull=False)


@contextmanager
def _echo_removed_after(client: docker.DockerClient) -> Iterator[None]:
    """The plain backend's image is removed after the block (enter it before the instance: it goes down first)."""
    try:
        yield
    finally:
        with suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            client.images.remove(ECHO_IMAGE, force=True)


def _launch(api: httpx.Client, session_type: str, image: str) -> str:
    data = {"name": f"gw{session_type[:4]}", "image": image, "type": session_type}
    response = api.post("/session", data=data)
    response.raise_for_status()
    session_id = response.text.strip()
    deadline = time.monotonic() + 300
    while (status := api.get(f"/session/{session_id}").json()["status"]) != "Running":
        if status == "Failed" or time.monotonic() > deadline:
            raise RuntimeError(api.get(f"/session/{session_id}", params={"view": "events"}).text)
        time.sleep(0.1)
    return session_id


def _address(client: docker.DockerClient, session_id: str) -> str:
    """The session container's address on its user's network (the host reaches bridge addresses)."""
    found = client.containers.list(
        filters={"label": [f"io.skaha-emulator.instance={INSTANCE}", f"canfar.net/id={session_id}"]}
    )
    assert len(found) == 1, f"session {session_id}: {len(found)} containers"
    networks = found[0].attrs["NetworkSettings"]["Networks"]
    return str(next(n["IPAddress"] for n in networks.values() if n.get("IPAddress")))


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.1)


def _found(pattern: str, report: str) -> tuple[str, ...]:
    match = re.search(pattern, report, re.M)
    assert match is not None, f"no {pattern!r} in wrk's report:\n{report}"
    return match.groups()


def _wrk(url: str, seconds: float, connections: int, expect: int) -> str:
    """wrk's report of `connections` keep-alive connections on one thread for `seconds`, with its latency
    distribution; every answer must be `expect` (wrk counts the others)."""
    command = ["wrk", "--latency", "-t1", f"-c{connections}", f"-d{seconds:g}s", url]
    run = subprocess.run(command, capture_output=True, text=True)
    report = run.stdout
    assert run.returncode == 0, f"{' '.join(command)} failed ({run.returncode}):\n{report}\n{run.stderr}"
    errors = re.search(r"Socket errors: (.*)", report)  # connections refused, reset or timed out
    assert errors is None, f"{url}: wrk's socket errors ({errors.group(1)})\n{report}"
    requests = int(_found(r"(\d+) requests in", report)[0])
    others = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    unexpected = int(others.group(1)) if others else 0
    if expect >= 300:
        unexpected = requests - unexpected
    assert requests and not unexpected, f"{url}: {unexpected} of {requests} answers were not {expect}\n{report}"
    return report


def _wrk_ms(report: str, percentile: str) -> float:
    value, unit = _found(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", report)
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk_rate(report: str) -> float:
    return float(_found(r"Requests/sec:\s+([\d.]+)", report)[0])


def _python_rate(url: str, seconds: float, clients: int, expect: int = 200) -> float:
    barrier = threading.Barrier(clients)

    def work() -> int:
        done = 0
        with httpx.Client(timeout=10) as client:
            client.get(url)  # open the connection before the clock starts
            barrier.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                if client.get(url).status_code == expect:
                    done += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(lambda _: work(), range(clients))) / seconds


# One masked text frame of WS_MESSAGE (a client's frames are masked, RFC 6455 5.3) and the echo's answer.
WS_MASK = b"\x0f\x1e\x2d\x3c"
WS_FRAME = (
    bytes((0x81, 0x80 | len(WS_MESSAGE)))
    + WS_MASK
    + bytes(b ^ WS_MASK[i % 4] for i, b in enumerate(WS_MESSAGE.encode()))
)
WS_ECHO = bytes((0x81, len(WS_MESSAGE))) + WS_MESSAGE.encode()


def _ws_rate(url: str, seconds: float, connections: int) -> float:
    """Messages/s of `connections` WebSockets, each sending a message and waiting for its echo in turn.

    The client is one asyncio loop speaking the frames itself (no threads, no library between): a client
    that costs little per message, so the figure is the path's."""

    async def measure() -> float:
        where = httpx.URL(url)
        start, connected = asyncio.Event(), [0]

        async def one() -> int:
            reader, writer = await asyncio.open_connection(where.host, where.port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET {where.raw_path.decode()} HTTP/1.1\r\nHost: {where.host}:{where.port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), (url, head)
            writer.write(WS_FRAME)
            assert await reader.readexactly(len(WS_ECHO)) == WS_ECHO
            connected[0] += 1
            if connected[0] == connections:
                start.set()
            await start.wait()
            done, end = 0, time.perf_counter() + seconds
            while time.perf_counter() < end:
                writer.write(WS_FRAME)
                assert await reader.readexactly(len(WS_ECHO)) == WS_ECHO
                done += 1
            writer.close()
            return done

        # A lost echo would wait forever: the whole measurement has a deadline.
        counts = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(connections))), seconds + 30)
        return sum(counts) / seconds

    return asyncio.run(measure())


def _p(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))]


def _http_sides(label: str, sides: dict[str, tuple[str, int]], args: argparse.Namespace) -> dict[str, object]:
    """Each side's latencies and throughputs, the sides taking turns for `--rounds` rounds; the medians.
    The first side is the baseline."""
    rounds: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, (url, expect) in sides.items():
            one = _wrk(url, args.seconds, 1, expect)
            rounds[side].append(
                {
                    "p50_ms": _wrk_ms(one, "50"),
                    "p99_ms": _wrk_ms(one, "99"),
                    "rps": _wrk_rate(_wrk(url, args.seconds, args.clients, expect)),
                    "python_rps": _python_rate(url, args.seconds, args.clients, expect),
                }
            )
    found = {side: {key: statistics.median(r[key] for r in got) for key in got[0]} for side, got in rounds.items()}
    base = found[DIRECT]
    print(f"{label} (1 connection, then {args.clients}; {args.seconds:g} s each, medians of {args.rounds} rounds)")
    for side, values in found.items():
        print(
            f"  {side:28} p50 {values['p50_ms']:6.3f} ms ({values['p50_ms'] - base['p50_ms']:+6.3f})"
            f"  p99 {values['p99_ms']:6.3f} ms  wrk {values['rps']:8.0f} req/s ({values['rps'] / base['rps']:4.2f}x)"
            f"  Python {values['python_rps']:6.0f} req/s ({values['python_rps'] / base['python_rps']:4.2f}x)"
        )
    gateway = found[GATEWAY]
    return {
        **found,
        "added_p50_ms": gateway["p50_ms"] - base["p50_ms"],
        "rps_ratio": gateway["rps"] / base["rps"],
        "python_rps_ratio": gateway["python_rps"] / base["python_rps"],
    }


def _ws_sides(sides: dict[str, str], args: argparse.Namespace) -> dict[str, object]:
    found: dict[str, object] = {}
    print(
        f"WebSocket ping-pong of {len(WS_MESSAGE)}-byte text messages, {args.seconds:g} s each, medians of"
        f" {args.rounds} rounds, messages/s"
    )
    for connections in sorted({1, args.ws_connections}):
        turns = [
            {side: _ws_rate(url, args.seconds, connections) for side, url in sides.items()} for _ in range(args.rounds)
        ]
        rates = {side: statistics.median(turn[side] for turn in turns) for side in sides}
        shown = "  ".join(f"{side} {rate:8.1f} ({rate / rates[DIRECT]:4.2f}x)" for side, rate in rates.items())
        print(f"  {connections:2d} connection(s): {shown}")
        found[str(connections)] = {**rates, "ratio": rates[GATEWAY] / rates[DIRECT]}
    return found


def main() -> None:
    args = command_line(__doc__, seconds=3.0, rounds=3, clients=16, ws_connections=8).parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/gateway.py drives HTTP with wrk: install it first (apt-get install wrk)")
    client = docker.from_env()
    results: dict[str, object] = {"args": vars(args)}
    with _echo_removed_after(client), bench_instance(INSTANCE) as instance:
        _build_echo(client, instance.root)
        url, port = instance.url, instance.port
        api = instance.api(instance.add_user("gwbench"), timeout=60)
        echo = _launch(api, "contributed", ECHO_IMAGE)
        notebook = _launch(api, "notebook", NOTEBOOK)
        echo_ip, notebook_ip = _address(client, echo), _address(client, notebook)
        gateway = client.containers.get(f"emulate-{INSTANCE}-gateway")
        inside = f"http://{gateway.attrs['NetworkSettings']['Networks'][f'emulate-{INSTANCE}']['IPAddress']}:8080"
        plain = {
            DIRECT: (f"http://{echo_ip}:5000/", 200),
            GATEWAY: (f"{url}/session/contrib/{echo}/", 200),
            GATEWAY_INSIDE: (f"{inside}/session/contrib/{echo}/", 200),
            "gateway's own 404 (no proxy)": (f"{url}/nothing-here", 404),
        }
        path = f"/session/notebook/{notebook}/api"
        jupyter = {
            DIRECT: (f"http://{notebook_ip}:8888{path}", 200),
            GATEWAY: (f"{url}{path}", 200),
            GATEWAY_INSIDE: (f"{inside}{path}", 200),
        }
        for address, expect in (*plain.values(), *jupyter.values()):
            if expect == 200:
                _wait(address)  # Running says the port is open; the app answers HTTP
        results["plain"] = _http_sides("plain backend (asyncio, 'ok')", plain, args)
        results["jupyterlab"] = _http_sides("JupyterLab /api", jupyter, args)
        websocket = {
            DIRECT: f"ws://{echo_ip}:5000/ws",
            GATEWAY: f"ws://127.0.0.1:{port}/session/contrib/{echo}/ws",
            GATEWAY_INSIDE: f"ws://{inside.removeprefix('http://')}/session/contrib/{echo}/ws",
        }
        results["websocket"] = _ws_sides(websocket, args)

        print("gateway (published port) against direct")
        for name, key, note in (
            ("plain backend", "plain", "(targets <= 0.3 ms, >= 0.9x)"),
            ("JupyterLab", "jupyterlab", "(reported)"),
        ):
            found = results[key]
            assert isinstance(found, dict)
            print(
                f"  {name:14} added p50 {found['added_p50_ms']:+6.3f} ms   req/s {found['rps_ratio']:.2f}x"
                f" (Python clients {found['python_rps_ratio']:.2f}x)   {note}"
            )
        ws = results["websocket"]
        assert isinstance(ws, dict)
        for connections, rates in ws.items():
            target = "(target >= 0.8)" if int(connections) > 1 else "(one round trip at a time: latency, reported)"
            print(f"  WebSocket, {connections} connection(s): messages/s {rates['ratio']:.2f}x   {target}")
    save_results("gateway", results)


if __name__ == "__main__":
    main()
