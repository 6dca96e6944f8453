"""Which host folders a launch may mount into its session (`emulate dev --mount`), and where they are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.core.devmounts import dev_mounts, platform_folders, refusal
from emulator.core.models import DevMount
from emulator.errors import InvalidRequest
from emulator.settings import Settings


def test_only_a_one_person_laptop_mounts_host_folders_unless_the_operator_says_so() -> None:
    assert refusal(Settings()) == ""  # loopback, no sign-in, one engine
    assert "shared" in refusal(Settings(auth=True))
    assert "shared" in refusal(Settings(host="0.0.0.0"))
    assert refusal(Settings(host="0.0.0.0", dev_mounts=True)) == ""
    assert "false" in refusal(Settings(dev_mounts=False))
    assert "swarm" in refusal(Settings(orchestrator="swarm", dev_mounts=True))


def test_a_good_mount_is_kept_as_asked() -> None:
    found = dev_mounts(["/home/me/project/notebooks:/opt/notebooks", "/data:/data"], "", by_session=False)
    assert found == [DevMount("/home/me/project/notebooks", "/opt/notebooks"), DevMount("/data", "/data")]
    assert str(found[0]) == "/home/me/project/notebooks:/opt/notebooks"
    assert dev_mounts([], "refused anyway", by_session=True) == []  # nothing asked: nothing to refuse


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("/src", "is not SOURCE:TARGET"),
        ("/a:/b:/c", "is not SOURCE:TARGET"),
        ("src:/opt/x", "absolute path"),
        ("/src/../etc:/opt/x", "absolute path"),
        ("/src/:/opt/x", "absolute path"),
        ("/src:opt/x", "absolute path"),
        ("/src:/opt//x", "absolute path"),
        ("/src\n:/opt/x", "absolute path"),
        ("/:/opt/x", "cannot be /"),
        ("/src:/", "cannot be /"),
        ("/var/run:/opt/x", "system folder"),
        ("/run/docker.sock:/opt/x", "system folder"),
        ("/proc/1:/opt/x", "system folder"),
        ("/src:/arc", "the platform's"),
        ("/src:/arc/home/me/x", "the platform's"),
        ("/src:/scratch", "the platform's"),
        ("/src:/skaha-system", "the platform's"),
        ("/src:/skahaX", "the platform's"),
        ("/src:/etc", "the platform's"),  # it would hide the identity files mounted under it
        ("/src:/etc/passwd", "the platform's"),
        ("/src:/desktopstartup", "the platform's"),  # the desktop profile's own
        ("/src:/proc/x", "the kernel's"),
        ("/src:/dev", "the kernel's"),
    ],
)
def test_a_mount_that_reaches_what_it_must_not_is_refused_in_words(entry: str, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        dev_mounts([entry], "", by_session=False, profile_targets=["/desktopstartup"])


def test_a_platform_that_takes_none_a_session_s_own_token_and_too_many_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="mount: this platform is shared"):
        dev_mounts(["/a:/b"], refusal(Settings(auth=True)), by_session=False)
    with pytest.raises(InvalidRequest, match="a session's own token cannot mount host folders"):
        dev_mounts(["/a:/b"], "", by_session=True)
    with pytest.raises(InvalidRequest, match="at most 8"):
        dev_mounts([f"/a:/b{i}" for i in range(9)], "", by_session=False)
    with pytest.raises(InvalidRequest, match="mounted twice"):
        dev_mounts(["/a:/b", "/c:/b"], "", by_session=False)


def test_the_platform_s_own_state_and_config_are_never_mounted_nor_reached_by_a_link(tmp_path: Path) -> None:
    # Where the operator lets every user mount folders, the state (every session's token) must stay out of reach.
    settings = Settings(state_dir=tmp_path / "state", config_dir=tmp_path / "config")
    platform = platform_folders(settings)
    (tmp_path / "state" / "sessions").mkdir(parents=True)
    home = tmp_path / "arc" / "home" / "mallory"
    home.mkdir(parents=True)
    (home / "way-in").symlink_to(tmp_path / "state" / "sessions")
    (home / "socket").symlink_to("/run")
    refused = {
        f"{tmp_path}/state/sessions:/opt/x": "platform's own state",
        f"{tmp_path}/config:/opt/x": "platform's own state",
        f"{home}/way-in:/opt/x": "platform's own state",
        f"{home}/socket:/opt/x": "system folder",
    }
    for entry, words in refused.items():
        with pytest.raises(InvalidRequest, match=words):
            dev_mounts([entry], "", by_session=False, platform=platform)
    assert dev_mounts([f"{home}:/opt/x"], "", by_session=False, platform=platform) == [DevMount(str(home), "/opt/x")]
