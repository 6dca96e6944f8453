"""`emulate dev` on a new notebook project, driven as a developer drives it: the first launch, an edit to the
start-up configuration picked up by a new session (and again at the session limit), a broken Dockerfile that
keeps the old session, a mounted folder's edits seen inside with no rebuild, and Ctrl-C leaving nothing behind.

The project's slow layers (apt, pip) are the engine's cache when tests/integration/test_init_image.py (or an
earlier run) built the same template with the same CA file: then the first build takes about a second."""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.instance import Instance

pytestmark = pytest.mark.slow

URL = re.compile(r"^http://(\w+)\.localhost:\d+/session/notebook/(\w+)/lab/tree/arc/home/")
IMAGE = "skaha-emulator-test/dev:dev"
FIRST_BUILD = 900  # seconds: a cold cache installs JupyterLab from PyPI


class Dev:
    """`emulate dev` as a subprocess, its output (stdout and stderr, in order) read line by line."""

    def __init__(self, platform: Instance, *args: str) -> None:
        env = {**platform.env, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "emulator", "dev", *args]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 120) -> re.Match[str]:
        """The next line that matches, read as it comes; the whole output so far when none does in time."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"emulate dev ended ({self.process.wait()}):\n" + "\n".join(self.seen))
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n" + "\n".join(self.seen))

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; its exit code, the rest of its output read."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        while (line := self._lines.get(timeout=10)) is not None:
            self.seen.append(line)
        return code


@pytest.fixture
def project(tmp_path: Path, fresh: Instance, docker_client: docker.DockerClient) -> Iterator[Path]:
    """A new notebook project, with a folder of notebooks to mount; its image removed after (its layers stay, the
    engine's cache, as `docker build` leaves them)."""
    fresh.emulate("init-image", "notebook", str(tmp_path / "astro"), "--image", IMAGE)
    notebooks = tmp_path / "astro" / "notebooks"
    notebooks.mkdir()
    notebooks.chmod(0o755)  # the session's user reads it (its own uid on a laptop; here canfar, not root)
    (notebooks / "first.txt").write_text("first\n")
    yield tmp_path / "astro"
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(IMAGE, force=True, noprune=True)


def _answer(platform: Instance, session_id: str, path: str) -> httpx.Response:
    return httpx.get(f"{platform.url}/session/notebook/{session_id}/{path}", timeout=10)


def _file_inside(platform: Instance, session_id: str, path: str) -> str:
    """A file's text as the session's JupyterLab reads it (its contents API, through the gateway)."""
    answer = _answer(platform, session_id, f"api/contents{path}?token={session_id}&content=1")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["content"])


def test_the_edit_run_loop(fresh: Instance, project: Path) -> None:
    routes = fresh.route_ids()
    dev = Dev(
        fresh, str(project), "--image", IMAGE, "--name", "astro", "--mount", f"{project / 'notebooks'}:/opt/notebooks"
    )
    try:
        first = dev.expect(URL, timeout=FIRST_BUILD).group(2)
        session = fresh.session(first)
        assert (session["name"], session["status"]) == ("astro", "Running")
        assert session["mounts"] == [f"{project / 'notebooks'}:/opt/notebooks"]
        assert _answer(fresh, first, "api").status_code == 200
        assert "X-Dev-Loop" not in _answer(fresh, first, "api").headers

        # A folder mounted into the session: an edit there is seen inside at once, and builds nothing.
        assert _file_inside(fresh, first, "/opt/notebooks/first.txt") == "first\n"
        (project / "notebooks" / "second.txt").write_text("edited live\n")
        assert _file_inside(fresh, first, "/opt/notebooks/second.txt") == "edited live\n"

        # The start-up configuration, edited: rebuilt, and a new session answers with the change.
        with (project / "jupyter_server_config.py").open("a") as config:
            config.write('c.ServerApp.tornado_settings = {"headers": {"X-Dev-Loop": "edited"}}\n')
        changed = dev.expect(r"^changed: (.*); rebuilding$").group(1)
        assert changed == "jupyter_server_config.py"  # the mounted folder's edit was never a change
        second = dev.expect(URL).group(2)
        dev.expect(rf"^replaced {first}$")
        assert second != first
        assert _answer(fresh, second, "api").headers["X-Dev-Loop"] == "edited"
        assert fresh.session(second)["name"] == "astro"
        assert fresh.http.get(f"/session/{first}").status_code == 404
        assert _file_inside(fresh, second, "/opt/notebooks/second.txt") == "edited live\n"

        # At the session limit (two more sessions of the user's count; ended ones too, until deleted), the old
        # session goes first, then its successor starts.
        others = [fresh.launch(f"other{i}", wait=False, image="debian:bookworm-slim", type="contributed") for i in "12"]
        with (project / "jupyter_server_config.py").open("a") as config:
            config.write('c.ServerApp.tornado_settings = {"headers": {"X-Dev-Loop": "at the limit"}}\n')
        dev.expect(rf"^at the session limit: deleted {second} before starting its successor$")
        third = dev.expect(URL).group(2)
        assert _answer(fresh, third, "api").headers["X-Dev-Loop"] == "at the limit"
        for other in others:
            fresh.http.delete(f"/session/{other}")

        # A broken Dockerfile: the error in words, and the session that ran keeps running.
        with (project / "Dockerfile").open("a") as dockerfile:
            dockerfile.write("RUN echo 'the broken step' && exit 3\n")
        dev.expect(rf"building {re.escape(IMAGE)} failed: .*returned a non-zero code: 3")
        dev.expect(r"the broken step")
        dev.expect(rf"^{third} keeps running$")
        assert fresh.session(third)["status"] == "Running"
        assert _answer(fresh, third, "api").status_code == 200
    finally:
        code = dev.interrupt()
    output = "\n".join(dev.seen)
    assert code == 0, output
    assert f"deleted {third}" in output and "Traceback" not in output
    assert fresh.session_containers() == [] and fresh.rows() == []
    assert fresh.route_ids() == routes
