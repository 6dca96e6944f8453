"""The CLI's HTTP client against a real HTTP server on loopback: what it sends, and how it meets a server that
closes idle connections (as the gateway does)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from emulator.client.http import EmulatorClient
from emulator.errors import NotFound
from emulator.layout import Layout


class Recorded(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections open between requests
    timeout = 0.3  # and closes them after this long idle, as a proxy does
    seen: list[tuple[str, str, bytes]] = []

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Recorded.seen.append(("GET", self.path, b""))
        if self.path.startswith("/skaha/v0/session/"):
            self._answer(404, b"abc def\n")
        else:
            self._answer(200, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorded.seen.append(("POST", self.path, body))
        self._answer(200, b"newid\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def client(tmp_path: Path) -> Iterator[EmulatorClient]:
    Recorded.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield EmulatorClient(Layout(state_dir=tmp_path), url=f"http://127.0.0.1:{server.server_address[1]}", token="t")
    finally:
        server.shutdown()
        server.server_close()


def test_a_launch_after_the_server_closed_the_idle_connection_is_sent_once_and_answered(
    client: EmulatorClient,
) -> None:
    assert client.context() == {}
    time.sleep(0.8)  # the server has closed the kept connection meanwhile
    assert client.launch(name="nb", image="x", type="notebook", env=["A=1", "B=2"]) == "newid"
    posts = [entry for entry in Recorded.seen if entry[0] == "POST"]
    assert posts == [("POST", "/skaha/v0/session", b"name=nb&image=x&type=notebook&env=A%3D1&env=B%3D2")]


def test_an_id_with_a_space_or_a_letter_beyond_ascii_is_sent_encoded_and_answered(client: EmulatorClient) -> None:
    with pytest.raises(NotFound):
        client.session("abc def")
    with pytest.raises(NotFound):
        client.session("é1")
    assert [path for _, path, _ in Recorded.seen] == ["/skaha/v0/session/abc%20def", "/skaha/v0/session/%C3%A91"]
