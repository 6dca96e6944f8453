"""`emulate doctor` against the real engines of this machine, and against broken set-ups: each says what is
wrong and how to fix it, and exits non-zero."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from emulator.bundle.archive import MANIFEST, Manifest
from tests.instance import Instance, free_port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An instance of the test's own: its folders, a free port, no CA variable of the host's."""
    found = {
        **os.environ,
        "EMULATE_INSTANCE": "doctor",
        "EMULATE_PORT": str(free_port()),
        "EMULATE_STATE_DIR": str(tmp_path / "state"),
        "EMULATE_CONFIG_DIR": str(tmp_path / "config"),
        "EMULATE_ARC_DIR": str(tmp_path / "arc"),
    }
    for variable in ("EMULATE_URL", "EMULATE_TOKEN", "EMULATE_REQUIRE_LIMITS"):
        found.pop(variable, None)
    return found


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, str]], str]:
    """The exit code, the findings by check, and stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "doctor", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = {f["check"]: f for f in json.loads(result.stdout)} if result.stdout.strip() else {}
    return result.returncode, findings, result.stderr


def failed(findings: dict[str, dict[str, str]]) -> list[str]:
    return [name for name, f in findings.items() if f["status"] == "fail"]


def test_this_machine_s_docker_passes(env: dict[str, str]) -> None:
    code, findings, _ = doctor(env)
    assert failed(findings) == [] and code == 0, findings
    assert findings["engine"]["detail"].startswith("Docker ") and ", rootful," in findings["engine"]["detail"]
    assert findings["limits"]["detail"].endswith("memory, CPU and pids limits hold")
    assert findings["port"]["detail"] == f"127.0.0.1:{env['EMULATE_PORT']} is free"
    assert set(findings) >= {"service socket", "user namespaces", "disk", "package indexes", "SELinux", "GPU", "images"}


def test_the_table_names_each_check_with_its_status(env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "emulator", "doctor"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["CHECK", "STATUS", "DETAIL", "FIX"]
    assert any(line.split()[:2] == ["engine", "ok"] for line in lines)


def test_an_unreachable_socket_fails_with_how_to_reach_an_engine(env: dict[str, str]) -> None:
    code, findings, stderr = doctor({**env, "DOCKER_HOST": "unix:///nonexistent"})
    assert code == 1 and "engine" in failed(findings)
    engine = findings["engine"]
    assert engine["detail"] == "no container engine answers at unix:///nonexistent: no such socket"
    assert "DOCKER_HOST" in engine["fix"] and "systemctl" in engine["fix"]


def test_a_taken_port_fails_with_another_port_to_use(env: dict[str, str]) -> None:
    port = int(env["EMULATE_PORT"])
    with socket.socket() as taker:
        taker.bind(("127.0.0.1", port))
        taker.listen()
        code, findings, _ = doctor(env)
    assert code == 1 and failed(findings) == ["port"]
    assert findings["port"]["detail"] == f"127.0.0.1:{port} is taken by another program"
    assert "emulate up --port" in findings["port"]["fix"]


def _unrelated_ca(folder: Path) -> Path:
    """A CA of no one's: a TLS proxy's certificate does not verify against it."""
    ca = folder / "unrelated-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=unrelated test CA", "-days", "1"]
        + ["-keyout", str(folder / "unrelated.key"), "-out", str(ca)],
        check=True,
        capture_output=True,
    )
    return ca


@pytest.mark.parametrize("bundle", ["empty", "unrelated"])
def test_a_ca_bundle_without_the_proxy_s_ca_fails_the_package_indexes(
    env: dict[str, str], tmp_path: Path, bundle: str
) -> None:
    # This machine reaches PyPI through a TLS-inspecting proxy: only a bundle holding its CA verifies it.
    ca = tmp_path / "empty.pem"
    ca.write_text("")
    if bundle == "unrelated":
        ca = _unrelated_ca(tmp_path)
    code, findings, _ = doctor({**env, "EMULATE_EXTRA_CA_BUNDLE": str(ca)})
    assert code == 1 and failed(findings) == ["package indexes"], findings
    indexes = findings["package indexes"]
    assert f"(trusting {ca} (EMULATE_EXTRA_CA_BUNDLE))" in indexes["detail"]
    assert "image builds will fail" in indexes["detail"]
    if bundle == "empty":
        assert "holds no usable certificate" in indexes["detail"]
    else:
        assert "certificate verify failed" in indexes["detail"]
    assert "EMULATE_EXTRA_CA_BUNDLE" in indexes["fix"]


def _bundle(path: Path, images: list[dict[str, str]]) -> Path:
    """A bundle's manifest (all doctor reads of it)."""
    document = Manifest(created="2026-01-01T00:00:00Z", emulator_version="0", python="x", images=images).to_json()
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(document)
        archive.addfile(info, io.BytesIO(document))
    return path


def test_a_bundle_s_images_not_loaded_fail_with_the_load_command(env: dict[str, str], tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "workshop.bundle", [{"name": "skaha-emulator/not-loaded:1", "id": "sha256:0"}])
    code, findings, _ = doctor(env, "--bundle", str(bundle))
    assert code == 1 and failed(findings) == ["images"]
    assert findings["images"]["detail"] == "not here: skaha-emulator/not-loaded:1 (in the bundle)"
    assert findings["images"]["fix"] == f"emulate bundle load {bundle}"


def test_a_missing_bundle_is_a_one_line_error(env: dict[str, str], tmp_path: Path) -> None:
    code, findings, stderr = doctor(env, "--bundle", str(tmp_path / "nowhere.bundle"))
    assert code == 1 and findings == {}
    assert stderr.strip() == f"error: no bundle at {tmp_path / 'nowhere.bundle'}"


def test_the_port_of_our_own_running_instance_is_fine_and_its_limits_are_told(platform: Instance) -> None:
    code, findings, _ = doctor(platform.env)
    assert findings["port"]["detail"].endswith("is this instance's own gateway (it is up)"), findings
    assert code == 0
    # The service tells its clients which limits hold: all of them here, so no mark and no header.
    response = platform.http.get("/session")
    assert "x-emulator-limits-not-enforced" not in response.headers
    stats: dict[str, Any] = platform.http.get("/session", params={"view": "stats"}).json()
    assert stats["limits"] == {"memory": True, "cpu": True, "pids": True, "whyNot": ""}
