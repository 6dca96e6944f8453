"""A test run of an image developer's project, run again with nothing changed, against its first run.

    python benchmarks/testkit_reruns.py [--runs 3]

The project is a folder with a contributed app's Dockerfile (Python's aiohttp installed into a venv on
skaha-emulator's base, as tests/images/contract-app) and one test:
`skaha_session(build="app", reuse=True)`, a page fetched through the gateway and a command run in it. Each
round gives the Dockerfile a new first line, so the first run builds it for real (the engine's cache of
later rounds' layers cannot serve it), then times three `pytest` runs end to end (a fresh process each):
the first (it builds the image and launches the session), the second with nothing changed (nothing built,
the session adopted), and one more with reuse off (nothing built, a session launched as any test's).
Medians of --runs rounds. The runs use a reuse home of their own (XDG folders in a temporary folder),
removed by `emulate testkit clean` after each round, and leave out our venv's other pytest plugins (a
developer's project has not hypothesis' or schemathesis'). Target: the second run within 0.2x of the first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
from common import EMULATE, ROOT, command_line, save_results

from emulator.testkit.images import folder_tag

DOCKERFILE = """\
FROM skaha-emulator/base:bookworm
RUN echo "round {token}"
RUN python3 -m venv /opt/app && /opt/app/bin/pip install --no-cache-dir "aiohttp>=3.9"
COPY app.py /opt/app/app.py
LABEL io.canfar.skaha.session.type="contributed"
CMD ["/opt/app/bin/python", "/opt/app/app.py"]
"""
APP = """\
from aiohttp import web


async def hello(request):
    return web.Response(text="hello")


app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host="0.0.0.0", port=5000, print=None)
"""
TEST = """\
import os


def test_the_app(skaha_session):
    app = skaha_session(build="app", reuse=os.environ.get("BENCH_REUSE") == "1")
    assert app.http.get("").text == "hello"
    code, output = app.exec("id -u")
    assert code == 0 and output.strip() != "0"
"""
OTHER_PLUGINS = ["hypothesispytest", "schemathesis", "xdist", "xdist.looponfail", "anyio", "cacheprovider"]


def timed_run(project: Path, env: dict[str, str], reuse: bool) -> float:
    skipped = [arg for name in OTHER_PLUGINS for arg in ("-p", f"no:{name}")]
    started = time.perf_counter()
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", *skipped, "-q", "test_app.py"],
        cwd=project,
        env={**env, "BENCH_REUSE": "1" if reuse else "0"},
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if ran.returncode != 0:
        raise SystemExit(f"the project's tests failed:\n{ran.stdout}\n{ran.stderr}")
    return elapsed


def one_round(root: Path, env: dict[str, str]) -> tuple[float, float, float]:
    project = root / f"project-{secrets.token_hex(3)}"
    (project / "app").mkdir(parents=True)
    (project / "app" / "Dockerfile").write_text(DOCKERFILE.format(token=secrets.token_hex(8)))
    (project / "app" / "app.py").write_text(APP)
    (project / "test_app.py").write_text(TEST)
    try:
        first = timed_run(project, env, reuse=True)
        second = timed_run(project, env, reuse=True)
        relaunched = timed_run(project, env, reuse=False)
    finally:
        subprocess.run([*EMULATE, "testkit", "clean"], env=env, capture_output=True, check=False)
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker.from_env().images.remove(folder_tag(project / "app"), force=True)
    return first, second, relaunched


def main() -> None:
    args = command_line(__doc__, runs=3).parse_args()
    rounds: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-reruns-") as folder:
        root = Path(folder)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_DATA_HOME": str(root / "data"),
        }
        for _ in range(args.runs):
            rounds.append(one_round(root, env))
    first, second, relaunched = (statistics.median(figures) for figures in zip(*rounds, strict=True))
    for name, value in (
        ("first run (build, launch)", first),
        ("second run, nothing changed", second),
        ("second run, reuse off", relaunched),
    ):
        print(f"{name:30} {value:6.2f} s  {value / first:5.2f}x")
    save_results("testkit_reruns", {"runs": args.runs, "rounds": rounds})


if __name__ == "__main__":
    main()
