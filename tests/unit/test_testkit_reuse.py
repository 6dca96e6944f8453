"""What decides whether a kept session is adopted (its slot and key), how the platform names one, what the
reuse home keeps of a session, and the tag a folder's image gets."""

from __future__ import annotations

from pathlib import Path

from emulator.profiles import load_profiles
from emulator.settings import REPO_ROOT
from emulator.testkit.attached import KEPT_NAME, kept_name
from emulator.testkit.images import folder_tag
from emulator.testkit.options import Launch, reuse_key, reuse_slot
from emulator.testkit.reuse import _record, _record_text, home_instance
from tests.factories import make_session

PROFILES = load_profiles(REPO_ROOT / "profiles")
NOTEBOOK = PROFILES["notebook"]


def test_the_key_changes_with_what_the_session_is_made_of_and_not_with_how_long_a_test_waits() -> None:
    base = reuse_key("sha256:1", "notebook", Launch(cores=2), NOTEBOOK, "/arc")
    assert reuse_key("sha256:1", "notebook", Launch(cores=2, timeout=5), NOTEBOOK, "/arc") == base
    others = {
        reuse_key("sha256:2", "notebook", Launch(cores=2), NOTEBOOK, "/arc"),
        reuse_key("sha256:1", "notebook", Launch(cores=1), NOTEBOOK, "/arc"),
        reuse_key("sha256:1", "notebook", Launch(cores=2, name="other"), NOTEBOOK, "/arc"),
        reuse_key("sha256:1", "notebook", Launch(cores=2), NOTEBOOK, "/elsewhere"),
        reuse_key("sha256:1", "notebook", Launch(cores=2), NOTEBOOK.model_copy(update={"port": 9}), "/arc"),
    }
    assert base not in others and len(others) == 5


def test_the_slot_is_what_a_test_asked_for_whatever_the_image_is_made_of() -> None:
    slot = reuse_slot("skaha-testkit/app:abc", "contributed", Launch())
    assert slot == reuse_slot("skaha-testkit/app:abc", "contributed", Launch(cores=4))
    assert slot != reuse_slot("skaha-testkit/app:abc", "contributed", Launch(name="two"))
    assert slot != reuse_slot("skaha-testkit/app:abc", "carta", Launch())


def test_a_kept_session_on_a_platform_says_so_in_its_name() -> None:
    name = kept_name("Test", "a" * 32, "b" * 32)
    assert name == "test-kitreuse-aaaaaaaa-bbbbbbbb" and KEPT_NAME.match(name)
    assert not KEPT_NAME.match("my-analysis") and not KEPT_NAME.match("-kitreuse-aaaaaaaa-bbbbbbbb")


def test_the_home_keeps_a_sessions_record_whole() -> None:
    session = make_session(parent_id="k3x9q2ab", app_id="a1b", env=["A=1"])
    assert _record(_record_text(session)) == session


def test_homes_of_two_state_folders_are_apart_and_one_folders_is_stable(tmp_path: Path) -> None:
    assert home_instance(tmp_path / "a") == home_instance(tmp_path / "a") != home_instance(tmp_path / "b")
    assert len(home_instance(tmp_path / "a")) <= 31  # an instance name's limit


def test_a_folders_image_tag_is_readable_and_apart_from_another_folder_of_that_name(tmp_path: Path) -> None:
    one, two = tmp_path / "x" / "My App", tmp_path / "y" / "My App"
    assert folder_tag(one).startswith("skaha-testkit/my-app:") and folder_tag(one) != folder_tag(two)
    assert folder_tag(one) == folder_tag(tmp_path / "x" / "." / "My App")
