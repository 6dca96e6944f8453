"""`emulate init-image` projects pass their own tests out of the box: each type's project is written,
built (as `emulate dev` builds it: host/builds.py, with the CAs this machine trusts added to the context) and
tested as its README says (`pytest`), and the kit works from a wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from emulator.host.builds import build_folder
from emulator.scaffold import TYPES
from emulator.settings import REPO_ROOT, load_settings
from tests.factories import remove_test_image, worker_image_tag
from tests.kits import kit_leftovers

pytestmark = pytest.mark.slow


def _emulate(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "emulator", *args], cwd=cwd, check=True, capture_output=True, text=True)


def _pytest(project: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def _new_project(root: Path, session_type: str, image: str) -> Path:
    _emulate("init-image", session_type, session_type, "--image", image, cwd=root)
    return root / session_type


def _build(project: Path, image: str, client: docker.DockerClient) -> None:
    """The project's image, built as `emulate dev` builds it: what this machine trusts (a TLS proxy's CA among it,
    here) goes into the context's ca-certificates/ under one name, so every project's slow layers (apt, pip) are
    the engine's cache for the next, and for tests/integration/test_dev.py's."""
    build_folder(load_settings(), project, image, client=client)


@pytest.fixture
def images(docker_client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The images a test builds go after it, and its projects' kit runs leave nothing behind (their state
    folders are under a TMPDIR of the test's, by which `kit_leftovers` tells theirs from other runs)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("TMPDIR", str(runs))
    made: list[str] = []
    yield made
    for tag in made:
        # The tag goes; its layers stay as the engine's build cache, so the next run does not fetch Debian's and
        # PyPI's packages again (what `docker build` does on any developer's machine).
        remove_test_image(docker_client, tag)
    assert kit_leftovers(docker_client) == []


@pytest.mark.parametrize("session_type", TYPES)
def test_a_new_project_builds_and_passes_its_own_tests(
    tmp_path: Path, docker_client: docker.DockerClient, images: list[str], session_type: str
) -> None:
    image = worker_image_tag(f"init-{session_type}")  # this checkout's own (EMULATE_TEST_INSTANCE)
    project = _new_project(tmp_path, session_type, image)
    _build(project, image, docker_client)
    images.append(image)
    result = _pytest(project, {**os.environ, "SKAHA_IMAGE": image})  # as its CI jobs run it
    assert result.returncode == 0, result.stdout + result.stderr
    validated = subprocess.run(
        [sys.executable, "-m", "emulator", "validate", image, "--type", session_type, "--static-only"],
        capture_output=True,
        text=True,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_the_kit_works_from_an_installed_wheel(
    tmp_path: Path, docker_client: docker.DockerClient, images: list[str]
) -> None:
    """A wheel carries the profiles and recipes the kit needs: with no checkout beside the package, a new
    project's tests pass (the package imported from the unpacked wheel, the test tools from this venv)."""
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(REPO_ROOT)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(next(wheels.glob("skaha_emulator-*.whl"))) as wheel:
        wheel.extractall(unpacked)
    for member in (unpacked / "emulator" / "shipped").rglob("*.sh"):
        member.chmod(0o755)  # zipfile drops modes; pip keeps them (the kit sets its scripts' modes anyway)
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    where = subprocess.run(
        [sys.executable, "-c", "import emulator.settings as s; print(s.Settings.model_validate({}).profiles_dir)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.strip() == str(unpacked / "emulator" / "shipped" / "profiles"), where
    image = worker_image_tag("init-wheel")
    project = _new_project(tmp_path, "contributed", image)
    _build(project, image, docker_client)
    images.append(image)
    result = _pytest(project, env)
    assert result.returncode == 0, result.stdout + result.stderr
