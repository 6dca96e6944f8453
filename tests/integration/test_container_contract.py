"""Inside a session: limits, identity, storage, exactly as the contract says."""

from __future__ import annotations

import io

import pytest

from emulator import labels
from tests.factories import build_test_image, remove_test_image, worker_image_tag
from tests.instance import INSTANCE, Instance

pytestmark = pytest.mark.slow


def _cgroup(platform: Instance, session_id: str, v1: str, v2: str) -> str:
    return platform.exec(session_id, f"cat {v1} 2>/dev/null || cat {v2}").strip()


def test_limits_identity_and_scratch(fresh: Instance) -> None:
    session_id = fresh.launch(name="Contract-Test", cores="2", ram="2")
    user = fresh.session(session_id)["userid"]
    memory = _cgroup(fresh, session_id, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
    assert int(memory) == 2 * 1024**3
    swap = _cgroup(
        fresh, session_id, "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "/sys/fs/cgroup/memory.swap.max"
    )
    assert swap in (str(2 * 1024**3), "0")  # v1: memory+swap = memory; v2: no swap
    quota = fresh.exec(
        session_id,
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"
        " 2>/dev/null || cat /sys/fs/cgroup/cpu.max",
    ).split()
    assert int(quota[0]) / int(quota[1]) == 2
    assert fresh.exec(session_id, "id -un").strip() == user
    assert fresh.exec(session_id, "id -u").strip() == fresh.session(session_id)["runAsUID"]
    assert fresh.exec(session_id, "hostname").strip() == "contract-test"
    assert fresh.exec(session_id, 'echo "$HOME $PWD"').split() == [f"/arc/home/{user}"] * 2
    assert "tmpfs" in fresh.exec(session_id, "stat -f -c %T /scratch")
    # /scratch counts against the session's memory: half the 2 GiB limit, so it fills before memory does.
    assert int(fresh.exec(session_id, "df -B1 --output=size /scratch").split()[-1]) == 1024**3
    assert fresh.exec(session_id, "ls -A /scratch").strip() == ""
    status = fresh.exec(session_id, "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status").split()
    assert status == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1"]
    assert (
        fresh.exec(session_id, "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max").strip()
        == "4096"
    )
    assert fresh.exec(session_id, "stat -c %a $HOME").strip() == "700"
    assert fresh.exec(session_id, "test -d /arc/projects && echo yes").strip() == "yes"


def test_home_persists_and_scratch_does_not(fresh: Instance) -> None:
    first = fresh.launch(name="first")
    fresh.exec(first, "echo kept > $HOME/notes.txt && echo gone > /scratch/tmp.txt")
    assert fresh.http.delete(f"/session/{first}").status_code == 200
    second = fresh.launch(name="second")
    assert fresh.exec(second, "cat $HOME/notes.txt").strip() == "kept"
    assert fresh.exec(second, "ls -A /scratch").strip() == ""
    user = fresh.session(second)["userid"]
    assert (fresh.arc_dir / "home" / user / "notes.txt").read_text() == "kept\n"


def test_the_platform_command_replaces_the_images_entrypoint(fresh: Instance) -> None:
    # As on CANFAR (a Kubernetes `command`), the notebook's launch script replaces ENTRYPOINT and CMD alike.
    dockerfile = (
        b"FROM skaha-emulator/notebook:latest\n"
        b'ENTRYPOINT ["/bin/sh", "-c", "echo this entrypoint must not run; exit 3"]\n'
        b'CMD ["nor-this"]\n'
    )
    tag = build_test_image(fresh.docker, worker_image_tag("entrypoint"), fileobj=io.BytesIO(dockerfile))
    try:
        session_id = fresh.launch(image=tag)
        assert "must not run" not in fresh.http.get(f"/session/{session_id}", params={"view": "logs"}).text
        fresh.http.delete(f"/session/{session_id}")
    finally:
        remove_test_image(fresh.docker, tag)


def test_the_user_has_skahas_login_shell_and_the_session_skahas_labels(fresh: Instance) -> None:
    session_id = fresh.launch()
    uid = fresh.session(session_id)["runAsUID"]
    entry = fresh.exec(session_id, f"getent passwd {uid}").strip()
    assert entry.endswith(":/sbin/nologin"), entry  # skaha's POSIX mapper: terminals must take SHELL
    assert fresh.exec(session_id, "echo $SHELL").strip() == "/bin/bash"  # our notebook image sets it
    container_labels = fresh.container(session_id).labels
    assert container_labels[labels.MANAGED_BY] == "skaha" and container_labels[labels.INSTANCE] == INSTANCE


def test_a_full_scratch_says_no_space_and_the_session_lives_on(fresh: Instance) -> None:
    session_id = fresh.launch(ram="2")
    fill = fresh.container(session_id).exec_run(["sh", "-c", "dd if=/dev/zero of=/scratch/fill bs=1M count=1500"])
    assert fill.exit_code != 0 and b"No space left on device" in fill.output
    assert fresh.session(session_id)["status"] == "Running"
    assert fresh.container(session_id).attrs["State"]["OOMKilled"] is False
    assert fresh.answers(session_id) < 500
