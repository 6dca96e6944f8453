"""`emulate doctor`'s checks and the limits warning, on recorded engine answers (GPUs, SELinux, Docker Desktop,
cgroup v2 and the rest this machine lacks are told to the pure checks as the machine would tell them)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from emulator.errors import ConfigError
from emulator.host import doctor
from emulator.host.doctor import FAIL, OK, WARN, Finding
from emulator.runtime.engine import EngineFacts, engine_facts_from
from emulator.settings import Settings
from tests.unit.recorded_engines import DOCKER, DOCKER_ROOTLESS, PODMAN_ROOTLESS, answers

# /version and /info as these engines answered on this machine (Debian 12, cgroup v1): tests/unit/recorded_engines.py.
ROOTFUL_DOCKER = answers(DOCKER)
ROOTLESS_DOCKER = answers(DOCKER_ROOTLESS)  # dockerd-rootless.sh on cgroup v1: it records limits, nothing enforces them
ROOTLESS_PODMAN = answers(PODMAN_ROOTLESS)  # says it is rootless only in `Rootless`, claims every limit, drops them


def facts(recorded: tuple[dict[str, Any], dict[str, Any]]) -> EngineFacts:
    return engine_facts_from(*recorded)


def test_rootful_docker_passes_the_engine_and_limits_checks() -> None:
    found = facts(ROOTFUL_DOCKER)
    engine = doctor.engine_check(found, "unix:///var/run/docker.sock", "")
    assert engine.status == OK
    assert "Docker 20.10.24+dfsg1 (cgroup v1), rootful, API 1.41" in engine.detail
    limits = doctor.limits_check(found)
    assert (limits.status, limits.detail) == (OK, "cgroup v1, driver cgroupfs: memory, CPU and pids limits hold")
    assert doctor.arc_owner_check(found) is None


@pytest.mark.parametrize("answers", [ROOTLESS_DOCKER, ROOTLESS_PODMAN], ids=["rootless-docker", "rootless-podman"])
def test_a_rootless_engine_on_cgroup_v1_fails_the_limits_check_with_its_reason_and_fix(answers: Any) -> None:
    found = facts(answers)
    assert doctor.engine_check(found, "unix:///run/user/1001/docker.sock", "").detail.startswith("rootless ")
    limits = doctor.limits_check(found)
    assert limits.status == FAIL
    assert "memory, CPU and pids limits will NOT be enforced" in limits.detail
    assert "rootless" in limits.detail
    assert "cgroup v2" in limits.fix and "delegate" in limits.fix
    assert not doctor.launch_will_work([limits])


def test_up_says_which_limits_why_and_what_to_do() -> None:
    paragraph = facts(ROOTLESS_DOCKER).limits_warning
    assert paragraph.startswith("Limits not enforced: this engine (rootless Docker 20.10.24+dfsg1 (cgroup v1))")
    assert "memory, CPU and pids limits" in paragraph
    assert "run the engine as root" in paragraph  # what to do
    assert "EMULATE_REQUIRE_LIMITS=true" in paragraph


def test_up_refuses_without_limits_when_they_are_required_and_warns_otherwise() -> None:
    from emulator.cli.instance import limits_warning

    assert limits_warning(Settings(), facts(ROOTFUL_DOCKER)) is None
    assert limits_warning(Settings(require_limits=True), facts(ROOTFUL_DOCKER)) is None
    warned = limits_warning(Settings(), facts(ROOTLESS_PODMAN))
    assert warned is not None and "rootless Podman 4.3.1" in warned
    with pytest.raises(ConfigError, match=r"EMULATE_REQUIRE_LIMITS=true, but this engine \(rootless Podman 4.3.1"):
        limits_warning(Settings(require_limits=True), facts(ROOTLESS_PODMAN))


def test_the_service_refuses_to_start_without_limits_when_they_are_required() -> None:
    from emulator.api.app import _check_limits

    _check_limits(Settings(require_limits=True), facts(ROOTFUL_DOCKER))
    _check_limits(Settings(), facts(ROOTLESS_DOCKER))  # a warning in the log only
    with pytest.raises(ConfigError, match="cannot enforce the sessions' memory, CPU and pids limits"):
        _check_limits(Settings(require_limits=True), facts(ROOTLESS_DOCKER))


def test_rootless_docker_says_whose_files_arc_holds() -> None:
    found = doctor.arc_owner_check(facts(ROOTLESS_DOCKER))
    assert found is not None and found.status == WARN and "subordinate uid" in found.fix


def test_an_unreachable_engine_fails_with_how_to_start_or_reach_one() -> None:
    gone = doctor.engine_check(None, "unix:///nonexistent", "no such socket")
    assert gone.status == FAIL and "no container engine answers at unix:///nonexistent" in gone.detail
    assert "DOCKER_HOST" in gone.fix and "systemctl" in gone.fix
    denied = doctor.engine_check(None, "unix:///var/run/docker.sock", "permission denied on the socket")
    assert "usermod -aG docker" in denied.fix
    assert doctor.socket_check(None, None, "").status == FAIL
    assert doctor.limits_check(None).status == WARN  # the engine line fails already
    assert doctor.images_check({"a:1": "notebook"}, None, None).detail == "unknown: no engine answers"


def test_the_service_socket_must_exist_except_on_docker_desktop(tmp_path: Path) -> None:
    rootful = facts(ROOTFUL_DOCKER)
    assert doctor.socket_check(rootful, str(tmp_path / "none.sock"), "").status == FAIL
    assert doctor.socket_check(rootful, str(tmp_path), "").status == OK
    version, info = ROOTFUL_DOCKER
    desktop = engine_facts_from(version, {**info, "OperatingSystem": "Docker Desktop"})
    assert doctor.socket_check(desktop, "/var/run/docker.sock", "").status == OK  # in Desktop's VM, not here
    refused = doctor.socket_check(rootful, None, "`emulate up` needs the engine on a local unix socket")
    assert refused.status == FAIL and "unix socket" in refused.detail


def test_api_versions_older_than_1_41_are_a_warning() -> None:
    version, info = ROOTFUL_DOCKER
    old = engine_facts_from({**version, "ApiVersion": "1.40"}, info)
    assert doctor.engine_check(old, "unix:///var/run/docker.sock", "").status == WARN


@pytest.mark.parametrize(
    ("values", "rootless", "status", "said"),
    [
        ({"user.max_user_namespaces": "96363"}, False, OK, "available (up to 96363)"),
        ({"user.max_user_namespaces": "0"}, False, WARN, "user.max_user_namespaces is 0"),
        ({"kernel.unprivileged_userns_clone": "0"}, None, WARN, "kernel.unprivileged_userns_clone is 0"),
        ({"kernel.apparmor_restrict_unprivileged_userns": "1"}, False, WARN, "AppArmor"),
        ({"user.max_user_namespaces": "0"}, True, OK, "in use by the rootless engine"),
    ],
)
def test_user_namespaces(values: dict[str, str | None], rootless: bool | None, status: str, said: str) -> None:
    found = doctor.userns_check(values, rootless)
    assert found.status == status and said in found.detail
    assert (found.fix != "") == (status == WARN)


def test_the_port() -> None:
    assert doctor.port_check("127.0.0.1", 8080, None, False).status == OK
    assert doctor.port_check("127.0.0.1", 8080, errno.EADDRINUSE, True).detail.endswith("own gateway (it is up)")
    taken = doctor.port_check("127.0.0.1", 8080, errno.EADDRINUSE, False)
    assert taken.status == FAIL and "taken by another program" in taken.detail and "--port 18080" in taken.fix
    assert "below 1024" in doctor.port_check("127.0.0.1", 80, errno.EACCES, False).detail


def test_disk_free_under_arc() -> None:
    arc = Path("/srv/arc")
    assert doctor.disk_check(arc, 50 << 30).status == OK
    assert doctor.disk_check(arc, 5 << 30).status == WARN
    low = doctor.disk_check(arc, 512 << 20)
    assert low.status == FAIL and "EMULATE_ARC_DIR" in low.fix


def test_package_indexes_name_the_ca_and_a_proxy_fix() -> None:
    fine = doctor.index_check({"https://pypi.org/simple/pip/": None}, "/etc/ssl/ca.pem (PIP_CERT)", offline=False)
    assert fine.status == OK and "/etc/ssl/ca.pem (PIP_CERT)" in fine.detail
    error = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain"
    untrusted = doctor.index_check({"https://pypi.org/simple/pip/": error}, "/tmp/x (EMULATE_EXTRA_CA_BUNDLE)", False)
    assert untrusted.status == FAIL and "image builds will fail" in untrusted.detail
    assert "EMULATE_EXTRA_CA_BUNDLE" in untrusted.fix
    offline = doctor.index_check({"https://pypi.org/simple/pip/": "no answer within 5 s"}, "x", offline=True)
    assert offline.status == WARN and "BUNDLE" in offline.fix


def test_an_empty_ca_bundle_is_said_to_hold_no_certificate() -> None:
    said = doctor.probe_index("https://pypi.org/simple/pip/", b"")  # refused before any network
    assert said is not None and "holds no usable certificate" in said


@pytest.mark.parametrize(
    ("enforce", "labels", "mode", "status"),
    [
        (None, False, "auto", OK),
        ("0", True, "auto", OK),
        ("1", True, "auto", OK),  # relabelled
        ("1", True, "disable", OK),
        ("1", False, "off", OK),  # the engine does not confine containers
        ("1", True, "off", WARN),
    ],
)
def test_selinux(enforce: str | None, labels: bool, mode: str, status: str) -> None:
    assert doctor.selinux_check(enforce, labels, mode).status == status


def test_gpus_through_the_nvidia_runtime_or_cdi() -> None:
    assert doctor.gpu_check([], "no NVIDIA GPU on this machine", "", ["runc"]).status == OK
    runtime = doctor.gpu_check(["NVIDIA A100"], "", "", ["nvidia", "runc"])
    assert runtime.status == OK and "through the nvidia runtime" in runtime.detail
    assert "through CDI" in doctor.gpu_check(["NVIDIA A100"], "", "", ["crun"]).detail
    refusal = "2 GPU(s) here, but Podman 4.3.1 cannot take CDI devices through its Docker API (Podman 5.4 or later)"
    stranded = doctor.gpu_check(["NVIDIA A100", "NVIDIA A100"], "", refusal, ["runc"])
    assert stranded.status == WARN and refusal in stranded.detail and "nvidia-ctk" in stranded.fix


def test_images_of_the_profiles_warn_and_of_a_bundle_fail() -> None:
    wanted = {"skaha-emulator/notebook:latest": "notebook", "ipac/firefly:2025.5": "firefly"}
    assert doctor.images_check(wanted, set(wanted), None).status == OK
    missing = doctor.images_check(wanted, {"skaha-emulator/notebook:latest"}, None)
    assert missing.status == WARN and missing.detail == "not here: ipac/firefly:2025.5 (firefly)"
    bundle = Path("workshop.bundle")
    unloaded = doctor.images_check(wanted, set(), bundle)
    assert unloaded.status == FAIL and unloaded.fix == "emulate bundle load workshop.bundle"


def test_the_exit_code_allows_warnings_only() -> None:
    assert doctor.launch_will_work([Finding("a", OK, ""), Finding("b", WARN, "", "x")])
    assert not doctor.launch_will_work([Finding("a", OK, ""), Finding("b", FAIL, "", "x")])


def test_skaha_json_stays_skaha_s_and_stats_carry_the_limits_as_our_own_addition() -> None:
    from emulator.api import views
    from emulator.core.models import HostCapacity, PlatformStats

    limits = facts(ROOTLESS_DOCKER).limits
    stats = PlatformStats(0, 0, 0, 0.0, 0.0, HostCapacity(cores=2, memory_gb=8.0))
    document = views.stats_json(stats, None, None, limits)
    assert document["limits"] == {"memory": False, "cpu": False, "pids": False, "whyNot": limits.why_not}
    assert "limits" not in views.stats_json(stats)


def test_ps_marks_the_figures_the_engine_does_not_hold() -> None:
    from emulator.cli.sessions import _not_held

    assert _not_held("memory", ["memory", "CPU", "pids"]) == " (not enforced)"
    assert _not_held("CPU", []) == ""


def test_the_session_list_carries_the_unenforced_limits_in_a_header_of_our_own() -> None:
    from fastapi.responses import Response

    from emulator.api.skaha import RAM_COUNTS_CACHE, UNENFORCED_LIMITS, _marked

    # A stand-in with only the two attributes _marked reads (a SessionManager needs a store, a runtime, a
    # gateway); it is not a SessionManager, hence the arg-type ignores below.
    class Manager:
        def __init__(self, answers: Any) -> None:
            self.limits = facts(answers).limits
            self.ram_counts_cache = facts(answers).memory_counts_cache

    marked = _marked(Response("[]"), Manager(ROOTLESS_DOCKER))  # type: ignore[arg-type]
    assert marked.headers[UNENFORCED_LIMITS] == "memory, CPU, pids" and marked.body == b"[]"
    assert RAM_COUNTS_CACHE not in marked.headers
    rootful = _marked(Response("[]"), Manager(ROOTFUL_DOCKER))  # type: ignore[arg-type]
    assert UNENFORCED_LIMITS not in rootful.headers and RAM_COUNTS_CACHE not in rootful.headers
    podman = _marked(Response("[]"), Manager(ROOTLESS_PODMAN))  # type: ignore[arg-type]
    assert podman.headers[RAM_COUNTS_CACHE] == "true"  # Podman's RAM in use counts the page cache: said


def test_emulate_ps_marks_ram_and_cores_not_enforced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from click.testing import CliRunner

    from emulator.cli import cli
    from emulator.client.http import RAM_COUNTS_CACHE, UNENFORCED_LIMITS

    session = {
        "id": "abc123",
        "name": "nb",
        "type": "notebook",
        "status": "Running",
        "image": "skaha-emulator/notebook:latest",
        "requestedCPUCores": "2",
        "requestedRAM": "4G",
        "cpuCoresInUse": "0.100",
        "ramInUse": "120M",
        "startTime": "2026-01-01T00:00:00Z",
        "expiryTime": "2026-01-05T00:00:00Z",
    }

    class Service(BaseHTTPRequestHandler):  # what a service on Podman answers to GET /skaha/v0/session
        def do_GET(self) -> None:
            body = json.dumps([session] if self.path == "/skaha/v0/session" else []).encode()
            self.send_response(200)
            self.send_header(UNENFORCED_LIMITS, "memory, CPU, pids")
            self.send_header(RAM_COUNTS_CACHE, "true")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("EMULATE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("EMULATE_TOKEN", "t")
    monkeypatch.setenv("EMULATE_STATE_DIR", str(tmp_path))
    try:
        result = CliRunner().invoke(cli, ["ps"])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert "0.100 / 2 (not enforced)" in result.stdout and "120M / 4G (not enforced)" in result.stdout
    assert "does not enforce the sessions' memory, CPU and pids limits" in result.stderr
    assert "RAM used includes the page cache on this engine" in result.stderr
