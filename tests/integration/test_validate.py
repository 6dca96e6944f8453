"""`emulate validate`: passes our own images, fails deliberately broken ones with the right findings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from tests.factories import TEST_IMAGES, build_test_image, built_test_images, remove_test_image
from tests.instance import INSTANCE, Instance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broken(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    with built_test_images(docker_client, ("wrong-port", "no-jupyter", "root-only", "headless-job")) as tags:
        yield tags


def _validate(platform: Instance, image: str, kind: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = platform.emulate("validate", image, "--type", kind, "--json", *extra, check=False)
    return result.returncode, json.loads(result.stdout)


def _failed(report: dict[str, Any]) -> dict[str, str]:
    return {f["check"]: f["fix"] for f in report["findings"] if not f["ok"] and not f["warning"]}


def _warned(report: dict[str, Any]) -> dict[str, str]:
    return {f["check"]: f["fix"] for f in report["findings"] if f["warning"] and not f["ok"]}


@pytest.mark.parametrize(
    "image, kind",
    [
        ("skaha-emulator/notebook:latest", "notebook"),
        ("skaha-emulator/desktop:latest", "desktop"),
        ("skaha-emulator/marimo:latest", "contributed"),
    ],
)
def test_our_images_pass(fresh: Instance, image: str, kind: str) -> None:
    code, report = _validate(fresh, image, kind)
    assert (code, _failed(report), _warned(report)) == (0, {}, {})
    assert {"starts", "logs"} <= {f["check"] for f in report["findings"]}
    if kind in ("notebook", "desktop"):
        assert "websocket" in {f["check"] for f in report["findings"]}
    assert fresh.rows() == []  # the smoke run deleted its session


def test_a_job_must_run_to_success(fresh: Instance, broken: dict[str, str]) -> None:
    code, report = _validate(fresh, broken["headless-job"], "headless")
    assert (code, _failed(report)) == (0, {})
    # The notebook image as a job runs JupyterLab, which never ends: that is a finding, not a pass.
    code, report = _validate(fresh, "skaha-emulator/notebook:latest", "headless", "--timeout", "5")
    assert code == 1 and "still Running" in _failed(report)["starts"]


def test_desktop_apps_pass_statically(fresh: Instance) -> None:
    for image in ("skaha-emulator/ds9:latest", "skaha-emulator/terminal:latest"):
        assert _validate(fresh, image, "desktop-app", "--static-only")[0] == 0


def test_wrong_port_is_found(fresh: Instance, broken: dict[str, str]) -> None:
    code, report = _validate(fresh, broken["wrong-port"], "contributed", "--timeout", "8")
    failed = _failed(report)
    assert code == 1 and set(failed) == {"starts"} and "port 5000" in failed["starts"]
    assert "EXPOSE 5000" in _warned(report)["port"]


def test_missing_jupyter_is_found(fresh: Instance, broken: dict[str, str]) -> None:
    code, report = _validate(fresh, broken["no-jupyter"], "notebook", "--timeout", "20")
    failed = _failed(report)
    assert code == 1 and {"program jupyter", "starts"} <= set(failed)
    assert "install jupyter" in failed["program jupyter"]


def test_root_only_is_found(fresh: Instance, broken: dict[str, str]) -> None:
    code, report = _validate(fresh, broken["root-only"], "notebook", "--static-only")
    failed = _failed(report)
    assert code == 1 and set(failed) == {"program jupyter"}
    assert "chmod -R a+rX" in failed["program jupyter"]
    detail = next(f["detail"] for f in report["findings"] if f["check"] == "program jupyter")
    assert "/opt/jupyter (mode 0700)" in detail


def test_human_output_names_each_check(fresh: Instance, broken: dict[str, str]) -> None:
    result = fresh.emulate("validate", broken["root-only"], "--type", "notebook", "--static-only", check=False)
    assert result.returncode == 1
    assert "✗ program jupyter" in result.stdout and "fails 1 check(s) as a notebook session" in result.stdout


def test_a_terminal_that_would_start_the_login_shell_is_warned_about(fresh: Instance, broken: dict[str, str]) -> None:
    # On CANFAR the user's login shell is /sbin/nologin: a terminal needs SHELL from the image.
    code, report = _validate(fresh, broken["no-jupyter"], "notebook", "--static-only")
    assert "ENV SHELL=/bin/bash" in _warned(report)["login shell"]
    detail = next(f["detail"] for f in report["findings"] if f["check"] == "login shell")
    assert "/sbin/nologin" in detail and "JupyterLab's terminal" in detail
    code, report = _validate(fresh, "skaha-emulator/desktop:latest", "desktop", "--static-only")
    assert ("login shell", True) in {(f["check"], f["ok"]) for f in report["findings"]}


@pytest.fixture
def traceback_images(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """tests/images/traceback-app as built, and built again with its traceback's exception ignored (a label)."""
    tags = {kind: f"skaha-emulator-test/traceback-app:{INSTANCE}-{kind}" for kind in ("plain", "ignoring")}
    try:
        build_test_image(docker_client, tags["plain"], path=str(TEST_IMAGES / "traceback-app"))
        build_test_image(
            docker_client,
            tags["ignoring"],
            path=str(TEST_IMAGES / "traceback-app"),
            buildargs={"LOG_IGNORE": "No module named .optional_extra."},
        )
        yield tags
    finally:
        for tag in tags.values():
            remove_test_image(docker_client, tag)


def test_a_traceback_at_start_fails_the_logs_with_its_lines_until_the_image_ignores_it(
    fresh: Instance, traceback_images: dict[str, str]
) -> None:
    """The app serves after its traceback, so only the log gate fails it, as release smoke tests' grep would."""
    result = fresh.emulate("validate", traceback_images["plain"], "--type", "contributed", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✗ logs" in result.stdout and "1 fatal finding(s) in the start-up logs (Python traceback)" in result.stdout
    assert "> " in result.stdout and "| Traceback (most recent call last):" in result.stdout
    assert "| ModuleNotFoundError: No module named 'optional_extra'" in result.stdout
    assert "✓ starts" in result.stdout and "✓ connect URL" in result.stdout
    code, report = _validate(fresh, traceback_images["ignoring"], "contributed")
    assert (code, _failed(report)) == (0, {})
    logs = next(f for f in report["findings"] if f["check"] == "logs")
    assert logs["detail"] == "no fatal errors (1 ignored by the image's patterns)"
