"""A hostile caller against the running platform: input that must never reach the engine raw, bodies
and headers bounded, redirects that stay on this host, and admission that holds for every type."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import httpx
import pytest

from tests.instance import SERVICE, Instance, localhost_client

pytestmark = pytest.mark.slow

IMAGE = "skaha-emulator/notebook:latest"
DS9 = "skaha-emulator/ds9:latest"
ENGINE_WORDS = ("Docker", "docker", "engine", "containers/json", "Traceback")


class _Listener:
    """A TCP listener on loopback that records whether anything connected (the engine must not)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.socket.close()


def test_a_digest_the_grammar_refuses_is_a_400_and_the_next_post_goes_through(fresh: Instance) -> None:
    """A digest's own errors once escaped as a 500, after which uvicorn closed its connection to the gateway
    and the next POST the gateway sent on it (anyone's) failed with a 502."""
    with httpx.Client(base_url=f"{fresh.url}/skaha/v0", headers=fresh.http.headers, timeout=30) as client:
        for reference in ["x@md5:" + "0" * 32, "x@sha256:" + "a" * 63, "x@sha256:" + "A" * 64]:
            launch = client.post("/session", data={"name": "x", "image": reference, "type": "notebook"})
            assert launch.status_code == 400 and "is not a valid image reference" in launch.text, launch.text
            after = client.post("/session", data={"name": "bad name", "image": "ubuntu", "type": "notebook"})
            assert after.status_code == 400 and "name can only contain" in after.text, after.text
    assert fresh.session_containers() == []


@pytest.mark.parametrize(
    "image",
    [
        "../../distribution/127.0.0.1:{port}/x:y",
        "../../containers/{service}",
        "../../containers",
        "../../images",
        "notebook:latest\n",
    ],
)
def test_the_image_parameter_never_reaches_the_engine_raw(fresh: Instance, image: str) -> None:
    listener = _Listener()
    try:
        before = (len(fresh.session_containers()), fresh.rows())
        reference = image.format(port=listener.port, service=SERVICE)
        launch = fresh.http.post("/session", data={"name": "x", "image": reference, "type": "notebook"})
        assert launch.status_code == 400, launch.text
        assert "is not a valid image reference" in launch.text
        assert not any(word in launch.text for word in ENGINE_WORDS)
        desktop = fresh.launch(name="desk", type="desktop", image="skaha-emulator/desktop:latest")
        app = fresh.http.post(f"/session/{desktop}/app", data={"image": reference})
        assert app.status_code == 400 and "is not a valid image reference" in app.text
        time.sleep(0.5)
        assert listener.connections == 0
        assert (len(fresh.session_containers()), fresh.rows()) == (before[0] + 1, [*before[1], desktop])
        assert httpx.get(f"{fresh.url}/skaha/v0/session", headers=fresh.http.headers).status_code == 200
    finally:
        listener.close()


def test_desktop_apps_get_the_checks_launches_get(fresh: Instance) -> None:
    desktop = fresh.launch(name="desk", type="desktop", image="skaha-emulator/desktop:latest")
    mismatch = fresh.http.post(f"/session/{desktop}/app", data={"image": IMAGE})
    assert (mismatch.status_code, mismatch.text) == (400, f"image/type mismatch: {IMAGE}/desktop-app\n")
    renew = fresh.http.post(f"/session/{desktop}-abc", data={"action": "renew"})
    assert renew.status_code == 400 and "No active job" in renew.text
    long_name = f"skaha-emulator-test/{'a' * 70}:latest"  # an app's host name is its image's last segment
    fresh.docker.images.get(DS9).tag(long_name)
    try:
        too_long = fresh.http.post(f"/session/{desktop}/app", data={"image": long_name})
        assert too_long.status_code == 400 and "at most 63 characters" in too_long.text
    finally:
        fresh.docker.images.remove(long_name)


def test_names_and_content_types_are_read_strictly(fresh: Instance) -> None:
    newline = fresh.http.post("/session", data={"name": "x\n", "image": IMAGE, "type": "notebook"})
    assert (newline.status_code, newline.text) == (400, "name can only contain alpha-numeric chars and '-'\n")
    upper = fresh.http.post(
        "/session",
        content="name=bad_name&image=x&type=notebook",
        headers={"Content-Type": "Application/X-WWW-Form-Urlencoded"},
    )
    assert upper.status_code == 400 and "name can only contain" in upper.text  # the form was read


def test_bodies_are_not_read_before_the_token_is_checked(platform: Instance) -> None:
    api = f"{platform.url}/skaha/v0/session"
    fields = "&".join(f"f{i}=v" for i in range(2000))
    crowded = httpx.post(
        api,
        content=fields,
        headers={"Authorization": "Bearer wrong", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (crowded.status_code, crowded.text) == (401, "Unauthorized\n")
    huge = httpx.post(api, content=b"x" * (50 << 20), headers={"Authorization": f"Bearer {platform.token}"})
    assert huge.status_code == 413
    headers = {"Authorization": f"Bearer {platform.token}", "X-Padding": "p" * (100 << 10)}
    assert httpx.get(api, headers=headers).status_code == 431


def test_redirects_stay_on_this_host(fresh: Instance) -> None:
    session_id = fresh.launch()
    address = urlparse(fresh.url)

    def location(path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection(address.netloc, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        found = response.getheader("Location") or ""
        connection.close()
        return response.status, found

    assert location(f"/session/notebook/{session_id}") == (308, f"/session/notebook/{session_id}/")
    for path in (
        f"/%2fsomewhere.example/..%2fsession/notebook/{session_id}",
        f"//somewhere.example/../session/notebook/{session_id}",
    ):
        status, found = location(path)
        assert status not in (301, 302, 303, 307, 308) or found == f"/session/notebook/{session_id}/", (path, found)
        assert not found.startswith("//"), (path, found)
    # A browser is sent to the session's own host, and to no other whatever the path says.
    host = fresh.session_host(session_id)
    navigate = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    for path in (
        f"/session/notebook/{session_id}/lab?token={session_id}",
        f"/session/notebook/{session_id}//somewhere.example/",
        f"/session/notebook/{session_id}/@somewhere.example/",
    ):
        sent = httpx.get(f"{fresh.url}{path}", headers=navigate, timeout=10)
        assert sent.status_code == 307 and sent.headers["location"] == host + path, (path, sent.headers)
        assert urlparse(sent.headers["location"]).hostname == f"{session_id}.localhost"


def test_on_a_laptop_too_each_session_has_a_host_of_its_own_serving_it_alone(fresh: Instance) -> None:
    session_id = fresh.launch()
    host = fresh.session_host(session_id)
    assert fresh.session(session_id)["connectURL"].startswith(f"{host}/session/notebook/{session_id}/")
    on_host = localhost_client()
    assert on_host.get(f"{host}/session/notebook/{session_id}/api/status?token={session_id}").status_code == 200
    for where in ("/science-portal/", "/skaha/v0/session", "/session/notebook/zzzzzzzz/api/status", "/"):
        assert on_host.get(host + where).status_code == 404, where
    look_alike = f"{fresh.session_host('zzzzzzzz')}/session/notebook/{session_id}/api/status?token={session_id}"
    assert on_host.get(look_alike).status_code == 404
    # Scripts still open it by path on the portal's host (curl, the canfar client, `emulate validate`).
    assert httpx.get(f"{fresh.url}/session/notebook/{session_id}/api/status?token={session_id}").status_code == 200


def test_session_pages_carry_security_headers(fresh: Instance) -> None:
    session_id = fresh.launch()
    response = httpx.get(f"{fresh.url}/session/notebook/{session_id}/lab?token={session_id}", timeout=10)
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_the_portal_and_the_api_are_never_framed(fresh: Instance) -> None:
    for path in ("/science-portal/", "/science-portal/login", "/skaha/v0/session", "/skaha/availability"):
        response = httpx.get(f"{fresh.url}{path}", headers=fresh.http.headers, timeout=10)
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'", path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path


def test_logs_are_bounded_and_never_hold_up_other_requests(fresh: Instance) -> None:
    job = fresh.job("chatty", cmd="python3", args="-c import\tsys;sys.stdout.write(('x'*1023+'\\n')*11000)")
    fresh.wait_status(job, "Succeeded", timeout=60)
    with ThreadPoolExecutor(10) as pool:
        reads = [pool.submit(fresh.http.get, f"/session/{job}", params={"view": "logs"}) for _ in range(10)]
        started = time.monotonic()
        listing = fresh.http.get("/session")
        waited = time.monotonic() - started
        answers = [read.result() for read in reads]
    assert listing.status_code == 200 and waited < 3, waited  # not queued behind ten log reads
    for answer in answers:
        assert answer.status_code == 200
        lines = answer.text.splitlines()
        # The newest whole lines, at most 10000 and 4 MiB: 4096 of these 1 KiB lines.
        assert len(answer.content) <= 4 << 20 and len(lines) == 4096 and set(lines) == {"x" * 1023}


def test_fixed_memory_is_never_promised_twice(fresh: Instance) -> None:
    # A job holds its memory as sessions do (23 GB here: one 20 GB job fits); a session that does not fit beside
    # it is refused at once (a second job would wait in the queue: test_queue.py).
    fresh.job("big", ram="20", cmd="sleep", args="60")
    second = fresh.http.post("/session", data={"name": "big", "image": IMAGE, "type": "notebook", "ram": "20"})
    assert second.status_code == 400 and second.text.startswith("Not enough memory on this machine for 20 GB")
    assert len(fresh.rows()) == 1
