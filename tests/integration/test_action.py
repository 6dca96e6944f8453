"""skaha-emulator's GitHub Action (.github/actions/validate) run on this machine the way GitHub runs it: the
script step's environment and run line are read from action.yml itself (so a drift between the two fails
here), with a Python of its own where setup-python would give one, on a new `init-image` project."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import venv
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import docker
import docker.errors
import pytest

from emulator.host.images import extra_ca
from emulator.scaffold import init_image
from emulator.settings import load_settings
from tests.action import ACTION, action, script_step

pytestmark = pytest.mark.slow

INPUT = re.compile(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}")
PASSING_TESTS = {"test_the_app_answers_under_its_stripped_prefix", "test_it_runs_as_the_session_user"}


def run_as_the_action(
    inputs: dict[str, str], workspace: Path, python: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The script step as the runner runs a composite action's `shell: bash` step: its env with the inputs
    (the defaults, then `inputs`) put in, GITHUB_ACTION_PATH set, `bash --noprofile --norc -eo pipefail` on
    a file holding the run line, in the workspace; setup-python's Python first on PATH. Returns the result
    and the reports folder."""
    declared = action()
    given = {name: str(spec.get("default", "")) for name, spec in declared["inputs"].items()} | inputs
    step = script_step(declared)
    env = {key: INPUT.sub(lambda m: given[m[1]], str(value)) for key, value in step["env"].items()}
    assert not [v for v in env.values() if "${{" in v], f"an expression this test cannot stand in for: {env}"
    assert step["shell"] == "bash"
    script = workspace.parent / f"step-{secrets.token_hex(3)}.sh"
    script.write_text(step["run"])
    # The installed skaha-emulator runs, not this checkout through PYTHONPATH.
    outside = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=workspace,
        env={**outside, **env, "GITHUB_ACTION_PATH": str(ACTION), "PATH": f"{python}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, workspace / given["junit"]


def cases(report: Path) -> dict[str, bool]:
    """A JUnit report's test cases: name -> passed."""
    root = ET.parse(report).getroot()
    return {
        case.attrib["name"]: case.find("failure") is None and case.find("error") is None
        for case in root.iter("testcase")
    }


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty Python, as setup-python gives the action (the script installs skaha-emulator into it)."""
    where = tmp_path_factory.mktemp("setup-python") / "venv"
    venv.create(where, with_pip=True)
    return where / "bin"


@pytest.fixture
def images(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    # The script's test run removed its sessions (other people's kit runs on this engine are not ours to count).
    left = [c.name for tag in made for c in docker_client.containers.list(all=True, filters={"ancestor": tag})]
    for tag in made:  # the layers stay as build cache (as test_init_image's do)
        with suppress(docker.errors.ImageNotFound):  # a run that failed before its build
            docker_client.images.remove(tag, force=True, noprune=True)
    assert left == []


def _project(root: Path, image: str) -> Path:
    project = root / "my-app"
    init_image("contributed", project, image=image)
    ca = extra_ca(load_settings())
    if ca:  # what this machine trusts (a TLS proxy's CA among it): the project README's way in
        (project / "ca-certificates" / "proxy.crt").write_bytes(ca)
    return project


def test_a_new_project_passes_the_action(tmp_path: Path, python: Path, images: list[str]) -> None:
    image = f"skaha-emulator-test/action-{secrets.token_hex(3)}:ci"
    project = _project(tmp_path, image)
    (project / "tests" / "requirements.txt").write_text("httpx\n")  # what the tests need beside the kit
    images.append(image)
    result, reports = run_as_the_action({"image": image, "requirements": "tests/requirements.txt"}, project, python)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in reports.iterdir()) == ["tests.xml", "validate-contributed.xml"]
    checks = cases(reports / "validate-contributed.xml")
    assert {"port", "type label"} <= set(checks) and all(checks.values()), checks
    assert cases(reports / "tests.xml") == dict.fromkeys(PASSING_TESTS, True)


def test_an_image_labelled_for_another_type_fails_with_both_reports(
    tmp_path: Path, python: Path, images: list[str]
) -> None:
    """The label says notebook: the checks (against the label's type) fail and the tests, which launch it as
    the contributed app it is, are refused; both still run, both reports are written, the step fails."""
    image = f"skaha-emulator-test/action-{secrets.token_hex(3)}:ci"
    project = _project(tmp_path, image)
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace('type="contributed"', 'type="notebook"'))
    images.append(image)
    result, reports = run_as_the_action({"image": image, "junit": "out/reports"}, project, python)
    assert result.returncode == 1, result.stdout + result.stderr
    assert sorted(p.name for p in reports.iterdir()) == ["tests.xml", "validate-notebook.xml"]
    checks = cases(reports / "validate-notebook.xml")
    assert checks["program jupyter"] is False and checks["type label"] is True, checks
    assert cases(reports / "tests.xml") == dict.fromkeys(PASSING_TESTS, False)
