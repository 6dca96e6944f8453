"""The message to the room (core/notices.py) and relaunch (core/relaunch.py): their rules, without Docker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from emulator.core import relaunch
from emulator.core.models import DevMount, Fault, FaultKind, Resources, Status
from emulator.core.notices import MAX_CHARACTERS, Broadcast, Notice, checked_text
from emulator.core.store import Store
from emulator.errors import InvalidRequest
from emulator.profiles import load_profiles
from emulator.settings import REPO_ROOT
from tests.factories import NOW, make_session

PROFILES = load_profiles(REPO_ROOT / "profiles")


def test_a_message_is_one_line_of_printable_text_up_to_500_characters() -> None:
    assert checked_text("  We restart at 14:00 ") == "We restart at 14:00"
    assert checked_text("Café ☕ à 14 h <b>not bold</b>") == "Café ☕ à 14 h <b>not bold</b>"  # shown as text
    assert checked_text("x" * MAX_CHARACTERS) == "x" * MAX_CHARACTERS
    refusals = {
        "": "the message is empty",
        "   ": "the message is empty",
        "x" * (MAX_CHARACTERS + 1): "the message has 501 characters; at most 500",
        "two\nlines": "U+000A",
        "a\ttab": "U+0009",
        "left\u202eright": "U+202E",  # a right-to-left override would show other words than those typed
        "bell\x07": "U+0007",
    }
    for text, words in refusals.items():
        with pytest.raises(InvalidRequest, match=words.replace("+", r"\+")):
            checked_text(text)
    with pytest.raises(InvalidRequest, match="the message is empty"):
        checked_text(None)


def test_the_message_is_kept_replaced_and_cleared_with_who_and_when(tmp_path: Path) -> None:
    clock = [NOW]
    store = Store(tmp_path / "s.db", uncounted_types=set())
    room = Broadcast(store, lambda: clock[0])
    assert room.current() is None and not room.clear()
    room.set("We restart at 14:00", "boss")
    clock[0] = NOW + timedelta(minutes=1)
    assert room.set("We restart at 15:00", "tutor") == Notice("We restart at 15:00", "tutor", clock[0])
    with pytest.raises(InvalidRequest):
        room.set("", "boss")  # a refused message leaves the one before
    assert Broadcast(Store(tmp_path / "s.db", uncounted_types=set()), lambda: NOW).current() == Notice(
        "We restart at 15:00", "tutor", clock[0]
    )
    assert room.clear() and room.current() is None


def test_a_relaunch_asks_for_the_same_type_image_name_and_resources_and_nothing_else() -> None:
    ended = make_session(
        type="notebook",
        name="analysis",
        image="images.canfar.net/skaha/astroml:latest",
        status=Status.FAILED,
        resources=Resources(2, 2, 8, 8, gpus=1, fixed=True),
        env=["AWS_SECRET_ACCESS_KEY=hunter2"],
        cmd="sleep",
        args="60",
        fault=Fault(FaultKind.OOM, 30),
        mounts=[DevMount("/home/me/src", "/src")],
    )
    request = relaunch.launch_request(ended, PROFILES["notebook"])
    assert (request.type, request.image, request.name) == (
        "notebook",
        "images.canfar.net/skaha/astroml:latest",
        "analysis",
    )
    assert (request.cores, request.ram, request.gpus) == ("2", "8", "1")
    assert request.env == [] and request.cmd is None and request.args is None
    assert request.fault is None and request.mounts == [] and request.registry_auth is None
    assert relaunch.launch_request(ended, PROFILES["notebook"], "dXNlcjpzZWNyZXQ=").registry_auth == "dXNlcjpzZWNyZXQ="


def test_flexible_sessions_and_types_with_fixed_resources_name_no_cores_or_ram() -> None:
    flexible = make_session(status=Status.SUCCEEDED, resources=Resources(1, 4, 4, 16, fixed=False))
    request = relaunch.launch_request(flexible, PROFILES["notebook"])
    assert (request.cores, request.ram, request.gpus) == (None, None, None)
    desktop = make_session(type="desktop", status=Status.SUCCEEDED, resources=Resources(2, 2, 16, 16, fixed=True))
    request = relaunch.launch_request(desktop, PROFILES["desktop"])
    assert (request.cores, request.ram) == (None, None)  # the profile gives them again


def test_only_an_ended_interactive_session_is_relaunched() -> None:
    relaunch.check_relaunchable(make_session(status=Status.FAILED), PROFILES["notebook"])
    relaunch.check_relaunchable(make_session(status=Status.SUCCEEDED), PROFILES["notebook"])
    for status in (Status.PENDING, Status.RUNNING, Status.TERMINATING):
        with pytest.raises(InvalidRequest, match=f"is {status.value}: only a session that has ended"):
            relaunch.check_relaunchable(make_session(status=status), PROFILES["notebook"])
    job = make_session(type="headless", status=Status.SUCCEEDED)
    with pytest.raises(InvalidRequest, match="only interactive sessions are relaunched"):
        relaunch.check_relaunchable(job, PROFILES["headless"])
    with pytest.raises(InvalidRequest, match="no longer offers"):
        relaunch.check_relaunchable(make_session(status=Status.FAILED), None)


def test_a_refusal_says_what_to_do_in_words() -> None:
    failed = make_session(status=Status.FAILED, name="nb", id="abcd1234", image="reg.example/private/img:1")
    limit = "User alice has reached the maximum of 3 active sessions."
    assert (
        relaunch.limit_reached(failed, limit)
        == f"{limit} A Failed session counts until it is deleted: delete nb (abcd1234) first."
    )
    assert relaunch.limit_reached(make_session(status=Status.SUCCEEDED), limit) == limit
    assert "give the registry username and secret under Advanced" in relaunch.credentials_again(failed)
