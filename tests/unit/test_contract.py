"""The container contract skaha's sessions get (core/contract.py), pure: spec, environment, passwd and group."""

from __future__ import annotations

from pathlib import Path

from emulator import labels
from emulator.core.contract import build_spec, group_lines, passwd_lines
from emulator.core.models import Resources
from emulator.profiles import load_profiles
from emulator.session_types import SessionType
from emulator.settings import REPO_ROOT, Settings
from tests.factories import USER, make_session

_session = make_session


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        instance="t1", state_dir=tmp_path / "state", arc_dir=tmp_path / "arc", config_dir=tmp_path / "config", port=9000
    )


def test_notebook_container_contract(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    profile = load_profiles(REPO_ROOT / "profiles")["notebook"]
    spec = build_spec(profile, _session(), USER, settings)
    assert spec.name == "emulate-t1-notebook-k3x9q2ab"
    assert spec.entrypoint == ["/skaha-system/start-jupyterlab.sh", "k3x9q2ab"] and spec.command is None
    assert spec.user == "1500:1500" and spec.group_add == [3001]
    assert spec.memory_bytes == 8 * 1024**3 and spec.nano_cpus == 2_000_000_000
    assert spec.hostname == "analysis" and spec.network == "emulate-t1-user-alice"  # the user's own network
    assert spec.working_dir == "/arc/home/alice"
    env = spec.environment
    assert list(env)[:6] == ["skaha_hostname", "skaha_username", "skaha_sessionid", "HOME", "PWD", "OMP_NUM_THREADS"]
    assert env["HOME"] == env["PWD"] == "/arc/home/alice"
    assert env["JUPYTER_TOKEN"] == "k3x9q2ab" and env["NB_UID"] == "1500" and env["MKL_NUM_THREADS"] == "2"
    assert env["skaha_hostname"] == "emulate-t1-gateway:8081"  # the gateway's internal listener
    targets = {m.target: m for m in spec.mounts}
    assert targets["/arc"].source == str(tmp_path / "arc") and not targets["/arc"].read_only
    assert targets["/etc/passwd"].read_only and targets["/skaha-system"].read_only
    # /scratch: skaha's 200 GiB for a notebook, capped at half the 8 GiB memory limit (a tmpfs uses memory).
    assert spec.tmpfs["/scratch"].startswith(f"size={4 * 1024**3},")
    assert spec.labels[labels.INSTANCE] == "t1" and spec.labels[labels.SESSION_ID] == "k3x9q2ab"
    assert spec.labels[labels.FLAVOR] == "fixed" and spec.restart_on_failure
    assert spec.labels[labels.MANAGED_BY] == "skaha"  # CANFAR's value, beside our own instance label


def test_user_env_reaches_headless_sessions_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    profiles = load_profiles(REPO_ROOT / "profiles")
    env = ["FOO=bar", "EQUATION=a=b"]  # skaha splits each at its first '='
    for session_type in SessionType:
        spec = build_spec(profiles[session_type], _session(type=session_type, env=env), USER, settings)
        if session_type is SessionType.HEADLESS:
            assert (spec.environment["FOO"], spec.environment["EQUATION"]) == ("bar", "a=b")
        else:
            assert "FOO" not in spec.environment and "EQUATION" not in spec.environment, session_type


def test_passwd_and_group_resolve_the_user_and_keep_the_image_entries() -> None:
    image_passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n"
    image_group = "root:x:0:\nusers:x:100:\nastro:x:999:\n"
    passwd = passwd_lines(image_passwd, USER, "/arc/home/alice")
    # skaha's POSIX mapper gives the user /sbin/nologin: terminals must take the image's SHELL.
    assert passwd.splitlines() == [
        "root:x:0:0:root:/root:/bin/bash",
        "alice:x:1500:1500::/arc/home/alice:/sbin/nologin",
    ]
    group = group_lines(image_group, USER)
    assert group.splitlines() == ["root:x:0:", "users:x:100:", "alice:x:1500:alice", "astro:x:3001:alice"]


def test_the_desktop_mounts_skahas_templates_and_gets_its_own_scratch_size(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    profiles = load_profiles(REPO_ROOT / "profiles")
    desktop = _session(type="desktop", resources=Resources(0.25, 1, 1, 4, fixed=True))
    spec = build_spec(profiles["desktop"], desktop, USER, settings)
    templates = {m.target: m for m in spec.mounts}["/desktopstartup"]
    assert templates.read_only and templates.source == str(tmp_path / "state" / "configmaps" / "desktop-templates")
    assert spec.tmpfs["/scratch"].startswith(f"size={2 * 1024**3},")  # half of 4 GiB (skaha: 10 GiB)
    big = _session(resources=Resources(1, 1, 512, 512, fixed=True))
    assert build_spec(profiles["notebook"], big, USER, settings).tmpfs["/scratch"].startswith(f"size={200 * 1024**3},")
    assert "/desktopstartup" not in {m.target for m in build_spec(profiles["notebook"], big, USER, settings).mounts}
