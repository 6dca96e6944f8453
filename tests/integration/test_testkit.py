"""The image developers' kit, used as a developer uses it: test files of their own, run by pytest (pytester,
in a subprocess, so the plugin is found through its entry point), against real images, a real gateway and
the real engine; then nothing of it is left in Docker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from emulator.testkit import leftovers
from tests.factories import built_test_images
from tests.instance import Instance
from tests.kits import kit_leftovers

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

NOTEBOOK = "skaha-emulator/notebook:latest"


@pytest.fixture(scope="module")
def kit_images(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    with built_test_images(docker_client, ("contract-app", "wrong-port", "no-jupyter", "headless-job"), "kit-") as tags:
        yield tags


def _ours(client: docker.DockerClient) -> list[str]:
    """Every container and network a kit run of this test made that is still there."""
    return kit_leftovers(client)


@pytest.fixture
def clean(docker_client: docker.DockerClient) -> Iterator[None]:
    assert _ours(docker_client) == [], "an earlier test left kit resources behind"
    yield
    left = _ours(docker_client)
    leftovers.sweep(docker_client, include_kept=True)
    assert left == [], f"the kit left these behind: {left}"


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", "-s", *args, timeout=600)


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
    kept = sorted(kit_leftovers(docker_client, running_only=True))
    assert len([n for n in kept if "-notebook-" in n]) == 1 and any(n.endswith("-gateway") for n in kept), kept
    # A later run leaves them alone; `emulate testkit clean` removes them.
    pytester.makepyfile(test_other="def test_nothing(): pass")
    _run(pytester, "test_other.py").assert_outcomes(passed=1)
    assert sorted(kit_leftovers(docker_client, running_only=True)) == kept
    cleaned = subprocess.run([sys.executable, "-m", "emulator", "testkit", "clean"], capture_output=True, text=True)
    assert cleaned.returncode == 0 and "removed" in cleaned.stdout, cleaned
    assert _ours(docker_client) == []


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
    assert any("-notebook-" in name for name in _ours(docker_client))
    pytester.makepyfile(test_next=f'def test_next(skaha_session): skaha_session("{NOTEBOOK}", type="notebook")')
    _run(pytester, "test_next.py").assert_outcomes(passed=1)
    assert _ours(docker_client) == []


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
