"""The image developers' kit, used as a developer uses it: test files of their own, run by pytest (pytester,
in a subprocess, so the plugin is found through its entry point), against real images, a real gateway and
the real engine; then nothing of it is left in Docker."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from emulator import labels
from emulator.settings import REPO_ROOT
from emulator.testkit import leftovers, reuse
from emulator.testkit.attached import KEPT_NAME
from emulator.testkit.images import folder_tag
from tests.factories import TEST_IMAGES, built_test_images
from tests.instance import Instance
from tests.kits import kit_leftovers

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

NOTEBOOK = "skaha-emulator/notebook:latest"
# A contributed app in seconds: what a developer's folder holds, built by skaha_session(build=...).
SMALL_APP = """\
FROM skaha-emulator/base:bookworm
LABEL io.canfar.skaha.session.type="contributed"
CMD ["python3", "-m", "http.server", "5000"]
"""


@pytest.fixture(scope="module")
def kit_images(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    with built_test_images(docker_client, ("contract-app", "wrong-port", "no-jupyter", "headless-job"), "kit-") as tags:
        yield tags


@pytest.fixture
def clean(docker_client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test's kit runs leave nothing behind. They keep their state in a folder of the test's (TMPDIR, which
    their subprocesses inherit), by which `kit_leftovers` tells theirs from other runs on the same engine."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("TMPDIR", str(runs))
    yield
    left = kit_leftovers(docker_client)
    leftovers.sweep(docker_client, include_kept=True)
    assert left == [], f"the kit left these behind: {left}"


# Our venv's other pytest plugins, which a developer's project has not: hypothesis' and schemathesis' alone took
# about 5 s of every run here (importing hypothesis), more than most of what the runs test.
OTHER_PLUGINS = ["hypothesispytest", "schemathesis", "xdist", "xdist.looponfail", "anyio", "cacheprovider"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    skipped = [arg for name in OTHER_PLUGINS for arg in ("-p", f"no:{name}")]
    return pytester.runpytest_subprocess(*skipped, "-v", "-s", *args, timeout=600)


def test_a_notebook_runs_code_as_the_session_user_and_writes_to_arc(pytester: pytest.Pytester, clean: None) -> None:
    pytester.makepyfile(
        f"""
        import json
        from websockets.sync.client import connect

        def test_notebook(skaha_session):
            session = skaha_session("{NOTEBOOK}", type="notebook", cores=1, ram=2)
            ran = session.exec("python -c 'import json; print(json.dumps([1, 2]))'")
            assert ran.ok and ran.output.strip() == "[1, 2]", ran
            who = session.exec("id -u; id -un; echo $HOME; pwd").output.split()
            assert who[0] != "0" and who[2] == who[3] == "/arc/home/" + who[1], who
            assert session.exec("touch /scratch/x && echo > $HOME/from-session.txt ok").ok
            assert (session.home / "from-session.txt").read_text() == "ok\\n"
            assert session.arc.is_dir() and session.home == session.arc / "home" / who[1]
            # The API under the kept prefix, and a kernel's WebSocket, through the gateway.
            assert session.url.endswith("/session/notebook/" + session.id + "/")
            assert session.http.get("api").json()["version"]
            kernel = session.http.post("api/kernels", json={{}}).json()
            ws_url = session.url.replace("http", "ws", 1) + "api/kernels/" + kernel["id"] + "/channels"
            with connect(ws_url + "?token=" + session.id, open_timeout=15):
                pass
            assert "token=" + session.id in session.connect_url
            limits = session.container.attrs["HostConfig"]
            assert limits["Memory"] == 2 * 1024**3 and limits["NanoCpus"] == 10**9
            print("LOGS", len(session.logs()))
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)


def test_a_desktop_app_draws_its_window_on_the_desktop(pytester: pytest.Pytester, clean: None) -> None:
    pytester.makepyfile(
        """
        import time

        def test_ds9(skaha_session):
            desktop = skaha_session("skaha-emulator/desktop:latest", type="desktop")
            ds9 = desktop.desktop_app("skaha-emulator/ds9:latest")
            assert ds9.type == "desktop-app" and ds9.user == desktop.user
            deadline = time.monotonic() + 60
            while "SAOImage ds9" not in desktop.exec("xwininfo -root -tree").output:
                assert time.monotonic() < deadline, desktop.exec("xwininfo -root -tree").output
                time.sleep(0.3)
            assert desktop.http.get("").status_code == 200  # noVNC's page, under the stripped prefix
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)


def test_a_contributed_app_answers_under_its_stripped_prefix(
    pytester: pytest.Pytester, clean: None, kit_images: dict[str, str]
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from websockets.sync.client import connect

        @pytest.mark.skaha(image="{kit_images["contract-app"]}", type="contributed")
        def test_contributed(skaha_session):
            app = skaha_session()
            answer = app.http.get("some/page").json()
            assert answer["path"] == "/some/page"  # the gateway stripped /session/contrib/<id>
            assert answer["uid"] != 0 and answer["kind"] == "contributed"
            with connect(app.url.replace("http", "ws", 1) + "ws", open_timeout=15) as ws:
                ws.send("hi")
                assert ws.recv(timeout=10) == "echo: hi"
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)


def test_a_headless_job_runs_to_its_end(pytester: pytest.Pytester, clean: None, kit_images: dict[str, str]) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from emulator.testkit import SkahaError

        def test_job(skaha_session):
            job = skaha_session("{kit_images["headless-job"]}")  # its label names one type: headless
            assert job.type == "headless" and job.wait(timeout=60) == 0
            assert "job done" in job.logs()
            # skaha splits args on single spaces: its own words, with env applied (headless only).
            job = skaha_session("{NOTEBOOK}", type="headless", cmd="/bin/sh", args=["-c", "exit${{IFS}}$CODE"],
                                env={{"CODE": "3"}})
            assert job.wait(timeout=60) == 3
            with pytest.raises(SkahaError, match="splits args on single spaces"):
                skaha_session("{NOTEBOOK}", type="headless", cmd="/bin/sh", args=["-c", "exit 3"])
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)


def test_a_broken_image_is_told_which_part_of_the_contract_it_broke(
    pytester: pytest.Pytester, clean: None, kit_images: dict[str, str]
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from emulator.testkit import ContractBroken

        def test_wrong_port(skaha_session):
            with pytest.raises(ContractBroken) as broken:
                skaha_session("{kit_images["wrong-port"]}", type="contributed", timeout=8)
            print("WRONG-PORT", broken.value)

        def test_no_jupyter(skaha_session):
            with pytest.raises(ContractBroken) as broken:
                skaha_session("{kit_images["no-jupyter"]}", type="notebook", timeout=60)
            print("NO-JUPYTER", broken.value)

        def test_type_label(skaha_session):
            with pytest.raises(ContractBroken) as broken:
                skaha_session("{kit_images["contract-app"]}", type="notebook")
            print("LABEL", broken.value)

        def test_env_on_a_notebook(skaha_session):
            from emulator.testkit import SkahaError
            with pytest.raises(SkahaError, match="only to headless jobs"):
                skaha_session("{NOTEBOOK}", type="notebook", env={{"A": "1"}})
            with pytest.raises(SkahaError, match="Invalid value for 'ram'"):
                skaha_session("{NOTEBOOK}", type="notebook", ram=3000)
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert "nothing answered on port 5000 under /session/contrib/" in out
    assert "port (advice): exposes 8000/tcp; contributed serves 5000/tcp" in out
    assert "the container exited with code" in out
    assert "program jupyter: jupyter is not on the image's PATH -> install jupyter" in out
    assert "image/type mismatch" in out and "CANFAR refuses to launch it as a notebook" in out


def test_keep_leaves_a_failed_tests_session_until_clean(
    pytester: pytest.Pytester, docker_client: docker.DockerClient, clean: None
) -> None:
    pytester.makepyfile(
        f"""
        def test_fails(skaha_session):
            skaha_session("{NOTEBOOK}", type="notebook")
            assert False, "look at it"

        def test_passes(skaha_session):
            skaha_session("{NOTEBOOK}", type="notebook")
        """
    )
    result = _run(pytester, "--skaha-keep")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*skaha sessions kept for a look*", "*test_fails: notebook * at http://127.0.0.1:*"])
    kept = sorted(kit_leftovers(docker_client))
    assert len([n for n in kept if "-notebook-" in n]) == 1 and any(n.endswith("-gateway") for n in kept), kept
    # A later run leaves them alone; `emulate testkit clean` removes them.
    pytester.makepyfile(test_other="def test_nothing(): pass")
    _run(pytester, "test_other.py").assert_outcomes(passed=1)
    assert sorted(kit_leftovers(docker_client)) == kept
    cleaned = subprocess.run([sys.executable, "-m", "emulator", "testkit", "clean"], capture_output=True, text=True)
    assert cleaned.returncode == 0 and "removed" in cleaned.stdout, cleaned
    assert kit_leftovers(docker_client) == []


def test_a_crashed_run_is_cleaned_up_by_the_next(
    pytester: pytest.Pytester, docker_client: docker.DockerClient, clean: None
) -> None:
    pytester.makepyfile(
        test_testkit_crash=f"""
        import time

        def test_hangs(skaha_session):
            skaha_session("{NOTEBOOK}", type="notebook")
            print("LAUNCHED", flush=True)
            time.sleep(600)
        """
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "test_testkit_crash.py"]
    with subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, text=True) as crashed:
        assert crashed.stdout is not None
        for line in crashed.stdout:
            if "LAUNCHED" in line:
                break
        os.kill(crashed.pid, signal.SIGKILL)
    assert any("-notebook-" in name for name in kit_leftovers(docker_client))
    pytester.makepyfile(test_next=f'def test_next(skaha_session): skaha_session("{NOTEBOOK}", type="notebook")')
    _run(pytester, "test_next.py").assert_outcomes(passed=1)
    assert kit_leftovers(docker_client) == []


@pytest.mark.parametrize("which", ["platform", "secured"])
def test_attached_mode_launches_through_a_running_platform(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, which: str, clean: None
) -> None:
    """Through the API of a platform, with and without sign-in on its session routes (`up --auth`)."""
    platform: Instance = request.getfixturevalue(which)
    pytester.makepyfile(
        f"""
        import pytest
        from emulator.testkit import Launch, SkahaError

        def test_through_the_api(skaha_session):
            session = skaha_session("{NOTEBOOK}", type="notebook")
            assert session.exec("python -c 'import json'").ok
            assert session.http.get("api").status_code == 200
            print("ATTACHED", session.id)

        def test_the_kits_own_refusals_hold_attached_too(skaha_kit):
            with pytest.raises(SkahaError, match="CANFAR applies env only to headless jobs"):
                skaha_kit.launch("{NOTEBOOK}", "notebook", Launch(env={{"A": "1"}}))
        """
    )
    result = _run(pytester, f"--skaha-url={platform.url}", f"--skaha-token={platform.token}")
    result.assert_outcomes(passed=2)
    launched = next(line.split("ATTACHED ")[1].split()[0] for line in result.outlines if "ATTACHED " in line)
    deadline = time.monotonic() + 30
    while platform.http.get(f"/session/{launched}").status_code != 404:
        assert time.monotonic() < deadline, "the attached run did not delete its session"
        time.sleep(0.2)


def test_the_runs_own_folder_is_private_and_goes_with_the_run(
    pytester: pytest.Pytester, clean: None, tmp_path: Path
) -> None:
    """Its session folders are named by session id (a notebook's token): nobody else may list them."""
    pytester.makepyfile(
        f"""
        import os, stat

        def test_private(skaha_session, skaha_kit):
            skaha_session("{NOTEBOOK}", type="notebook")
            mode = stat.S_IMODE(os.stat(skaha_kit.state).st_mode)
            assert mode == 0o700, oct(mode)
            print("STATE", skaha_kit.state)
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    state = next(line.split("STATE ")[1].split()[0] for line in result.outlines if "STATE " in line)
    assert not Path(state).exists()


@pytest.fixture
def reuse_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: docker.DockerClient) -> Iterator[Path]:
    """The runs' reuse home in a folder of the test's own (its state and /arc), removed after the test."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    state = tmp_path / "state" / "skaha-emulator" / "testkit-reuse"
    yield state
    subprocess.run([sys.executable, "-m", "emulator", "testkit", "clean"], capture_output=True, check=False)
    selector = {"label": f"{labels.KIT_REUSE}={state}"}
    assert docker_client.containers.list(all=True, filters=selector) == []


def _kept(client: docker.DockerClient, state: Path) -> list[str]:
    selector = {"label": f"{labels.KIT_REUSE}={state}"}
    containers = [c.name for c in client.containers.list(all=True, filters=selector)]
    return containers + [n.name for n in client.networks.list(filters=selector)]


@contextlib.contextmanager
def _removing_images(client: docker.DockerClient, *folders: Path) -> Iterator[None]:
    """The images skaha_session(build=...) makes of these folders go after the block (their layers stay as cache)."""
    try:
        yield
    finally:
        for folder in folders:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(folder_tag(folder), force=True, noprune=True)


def _small_app_project(pytester: pytest.Pytester, test: str) -> Path:
    """A project of one test file, `test`, and the folder `app/` of a small contributed app's Dockerfile."""
    app = pytester.mkdir("app")
    (app / "Dockerfile").write_text(SMALL_APP)
    pytester.makepyfile(test)
    return app


KEPT_TEST = """
def test_kept(skaha_session):
    print("SESSION", skaha_session(build="app", reuse=True).id)
"""


def test_a_folder_is_built_once_and_a_reused_session_is_adopted_until_its_image_changes(
    pytester: pytest.Pytester, clean: None, reuse_home: Path, docker_client: docker.DockerClient
) -> None:
    app = _small_app_project(
        pytester,
        """
        import pytest

        pytestmark = pytest.mark.skaha(build="app", reuse=True)

        def test_kept(skaha_session):
            app = skaha_session()  # its label names one type
            code, output = app.exec("cat /tmp/runs 2>/dev/null | wc -l; echo run >> /tmp/runs")
            assert code == 0 and app.http.get("").status_code == 200
            other = skaha_session()  # this test holds the first: another, kept too
            print("SESSION", app.id, app.adopted, output.strip(), other.id)
        """,
    )
    with _removing_images(docker_client, app):
        first = _run(pytester)
        first.assert_outcomes(passed=1)
        first.stdout.fnmatch_lines(["*skaha images built from folders*", "built skaha-testkit/app:* from * in *"])
        launched = _printed(first, "SESSION")
        assert launched[1:3] == ["False", "0"], launched
        image_id = docker_client.images.get(folder_tag(app)).id
        # Nothing changed: nothing built (the same image), and the sessions adopted with what the first run left.
        second = _run(pytester)
        second.assert_outcomes(passed=1)
        second.stdout.fnmatch_lines(
            ["skaha-testkit/app:* from *: unchanged, nothing built", f"adopted contributed {launched[0]} *"]
        )
        assert _printed(second, "SESSION") == [launched[0], "True", "1", launched[3]]
        assert docker_client.images.get(folder_tag(app)).id == image_id
        # The folder changed: built again, and the kept sessions replaced.
        (app / "Dockerfile").write_text(SMALL_APP + "ENV CHANGED=1\n")
        third = _run(pytester)
        third.assert_outcomes(passed=1)
        third.stdout.fnmatch_lines(["built skaha-testkit/app:* from * in *"])
        replaced = _printed(third, "SESSION")
        assert replaced[1:3] == ["False", "0"] and not {launched[0], launched[3]} & {replaced[0], replaced[3]}
        kept = _kept(docker_client, reuse_home)
        assert not any(launched[0] in name or launched[3] in name for name in kept), kept
        assert kit_leftovers(docker_client) == []  # each run's own network and gateway went with it
        cleaned = subprocess.run([sys.executable, "-m", "emulator", "testkit", "clean"], capture_output=True, text=True)
        assert cleaned.returncode == 0 and replaced[0] in cleaned.stdout, cleaned
        assert _kept(docker_client, reuse_home) == []


def test_a_kept_session_a_run_still_going_holds_is_neither_adopted_nor_deleted_until_let_go(
    pytester: pytest.Pytester, clean: None, reuse_home: Path, docker_client: docker.DockerClient
) -> None:
    app = _small_app_project(pytester, KEPT_TEST)
    with _removing_images(docker_client, app):
        first = _run(pytester)
        first.assert_outcomes(passed=1)
        (held,) = _printed(first, "SESSION")
        # Held as a run going beside the next one holds it while a test of its uses it (this process: alive).
        mark = reuse_home / reuse.RECORDS / f"{held}{reuse.HELD}"
        mark.write_text(leftovers.owner())
        second = _run(pytester)
        second.assert_outcomes(passed=1)
        (launched,) = _printed(second, "SESSION")
        assert launched != held and any(held in name for name in _kept(docker_client, reuse_home))
        # Let go of: the next run adopts it, the oldest of its slot.
        mark.unlink()
        third = _run(pytester)
        third.assert_outcomes(passed=1)
        assert _printed(third, "SESSION") == [held]


def test_a_run_with_other_profiles_leaves_alone_the_home_gateway_a_run_still_going_uses(
    pytester: pytest.Pytester, clean: None, reuse_home: Path, docker_client: docker.DockerClient
) -> None:
    app = _small_app_project(pytester, KEPT_TEST)
    profiles = pytester.path / "profiles"
    shutil.copytree(REPO_ROOT / "profiles", profiles)
    (profiles / "firefly.yaml").unlink()  # a table of routes of its own
    gateway = {"label": [f"{labels.KIT_REUSE}={reuse_home}", f"{labels.ROLE}={labels.ROLE_GATEWAY}"]}
    holder = reuse_home / reuse.HOLDERS / leftovers.owner()  # as a run going beside the next holds the home
    with _removing_images(docker_client, app):
        _run(pytester).assert_outcomes(passed=1)
        before = [c.id for c in docker_client.containers.list(filters=gateway)]
        holder.touch()
        try:
            other = _run(pytester, f"--skaha-profiles={profiles}")
        finally:
            holder.unlink()
        other.assert_outcomes(failed=1)
        other.stdout.fnmatch_lines(["*the reuse home's gateway routes another profile set or gateway image*"])
        assert [c.id for c in docker_client.containers.list(filters=gateway)] == before and len(before) == 1


def _printed(result: pytest.RunResult, mark: str) -> list[str]:
    return next(line.split(f"{mark} ", 1)[1].split() for line in result.outlines if f"{mark} " in line)


def test_check_logs_fails_a_launch_whose_start_up_printed_a_traceback_and_honours_the_images_ignore_file(
    pytester: pytest.Pytester, clean: None, docker_client: docker.DockerClient
) -> None:
    shutil.copytree(TEST_IMAGES / "traceback-app", pytester.path / "app")
    ignoring = pytester.mkdir("app-ignoring")
    (ignoring / "Dockerfile").write_text(
        (TEST_IMAGES / "traceback-app" / "Dockerfile").read_text()
        + "RUN mkdir -p /etc/skaha-emulator && printf '# optional\\nNo module named .optional_extra.\\n' "
        "> /etc/skaha-emulator/log-ignore\n"
    )
    pytester.makepyfile(
        """
        import pytest
        from emulator.testkit import ContractBroken

        def test_fails(skaha_session):
            with pytest.raises(ContractBroken) as broken:
                skaha_session(build="app")
            print("BROKEN", str(broken.value).replace("\\n", " NEWLINE "))

        def test_ignored(skaha_session):
            app = skaha_session(build="app-ignoring")
            assert app.check_logs().ignored and app.http.get("").status_code == 200
            with pytest.raises(ContractBroken, match="optional_extra"):
                skaha_session(build="app", check_logs=False).check_logs()
        """
    )
    with _removing_images(docker_client, pytester.path / "app", ignoring):
        result = _run(pytester, "--skaha-check-logs")
    result.assert_outcomes(passed=2)
    broken = " ".join(_printed(result, "BROKEN"))
    assert "1 fatal finding(s) in the start-up logs (Python traceback)" in broken, broken
    assert "| ModuleNotFoundError: No module named 'optional_extra'" in broken
    assert "io.skaha-emulator.log.ignore label or /etc/skaha-emulator/log-ignore" in broken


def test_attached_a_reused_session_stays_on_the_platform_until_clean(
    pytester: pytest.Pytester, platform: Instance, reuse_home: Path, docker_client: docker.DockerClient
) -> None:
    app = _small_app_project(
        pytester,
        """
        def test_kept(skaha_session):
            app = skaha_session(build="app", reuse=True)
            assert app.http.get("").status_code == 200
            print("SESSION", app.id, app.adopted)
        """,
    )
    attached = (f"--skaha-url={platform.url}", f"--skaha-token={platform.token}")
    with _removing_images(docker_client, app):
        first = _run(pytester, *attached)
        first.assert_outcomes(passed=1)
        launched, adopted = _printed(first, "SESSION")
        assert adopted == "False"
        # Kept on the platform under a name that says so, and adopted by the next run.
        listed = {found["id"]: found["name"] for found in platform.http.get("/session").json()}
        assert KEPT_NAME.match(listed[launched]) and listed[launched].startswith("test-kitreuse-"), listed
        second = _run(pytester, *attached)
        second.assert_outcomes(passed=1)
        assert _printed(second, "SESSION") == [launched, "True"]
        env = {**platform.env, "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"], "HOME": os.environ["HOME"]}
        cleaned = subprocess.run(
            [sys.executable, "-m", "emulator", "testkit", "clean"], env=env, capture_output=True, text=True
        )
        assert cleaned.returncode == 0 and launched in cleaned.stdout, cleaned
    deadline = time.monotonic() + 30
    while platform.http.get(f"/session/{launched}").status_code != 404:
        assert time.monotonic() < deadline, "emulate testkit clean did not delete the kept session"
        time.sleep(0.2)
