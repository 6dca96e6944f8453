"""`emulate dev`'s parts that need no engine: what counts as a change to a folder, the type an image runs as,
how a failed start is told, and the build context's digest."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from watchfiles import Change

from emulator.host.builds import context_digest, context_files
from emulator.host.dev import ImageProblem, session_type_of, warnings
from emulator.host.watching import ChangeFilter, FolderWatch

TYPES = ["carta", "contributed", "desktop", "firefly", "notebook"]
LABEL = "io.canfar.skaha.session.type"


def _project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM debian\n")
    (root / "start.py").write_text("print('hi')\n")
    (root / ".dockerignore").write_text("# data stays out\ndata/\n*.log\n")
    return root


def test_only_what_the_build_sees_is_a_change(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    wanted = ChangeFilter(project, [project / "notebooks"])
    seen = {
        name: wanted(Change.modified, str(project / name))
        for name in (
            "start.py",
            "Dockerfile",
            ".dockerignore",
            "sub/x.py",  # the build's
            "data/big.fits",
            "run.log",
            "notebooks/a.ipynb",
            "notebooks",  # ignored, or mounted into the session
            ".git/index",
            ".start.py.swp",
            "start.py~",
            "__pycache__/x.pyc",  # git's, an editor's, Python's
        )
    }
    assert [name for name, kept in seen.items() if kept] == ["start.py", "Dockerfile", ".dockerignore", "sub/x.py"]
    assert not wanted(Change.modified, str(tmp_path / "elsewhere.py"))
    (project / ".dockerignore").write_text("start.py\n")  # read again once it changes, as the build reads it
    assert not wanted(Change.modified, str(project / "start.py"))
    assert wanted(Change.modified, str(project / "run.log"))


def test_a_save_is_one_change_and_edits_made_meanwhile_come_together(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    watch = FolderWatch(project, ChangeFilter(project, []))
    try:
        time.sleep(0.3)  # the watcher is armed (a build would be running now)
        (project / "data").mkdir()
        (project / "data" / "ignored.fits").write_text("x")
        (project / "start.py").write_text("print('edited')\n")
        time.sleep(0.3)  # another save, in its own burst
        (project / "other.py").write_text("")
        time.sleep(0.3)
        assert watch.next(timeout=10) == ["other.py", "start.py"]
        assert watch.next(timeout=0.2) == []  # nothing more
    finally:
        watch.close()


@pytest.mark.parametrize(
    ("declared", "asked", "runs_as"),
    [
        ("notebook", None, "notebook"),
        ("notebook,headless", None, "notebook"),  # the one type emulate dev runs
        ("notebook,contributed", "contributed", "contributed"),
        (None, "notebook", "notebook"),  # no label: the platform trusts the type asked for
    ],
)
def test_the_type_comes_from_the_label_or_the_option(declared: str | None, asked: str | None, runs_as: str) -> None:
    assert session_type_of({LABEL: declared} if declared else {}, asked, TYPES) == runs_as


@pytest.mark.parametrize(
    ("declared", "asked", "words"),
    [
        ("contributed", "notebook", "names other types than notebook: the platform refuses it"),
        (None, None, "has no io.canfar.skaha.session.type label"),
        ("notebook,contributed", None, "names notebook, contributed: give --type"),
        ("headless", None, "names no type emulate dev runs"),
    ],
)
def test_a_type_the_image_cannot_run_as_is_said_in_words(declared: str | None, asked: str | None, words: str) -> None:
    with pytest.raises(ImageProblem, match=words):
        session_type_of({LABEL: declared} if declared else {}, asked, TYPES)


def test_a_failed_start_is_told_by_its_warnings_with_the_app_s_last_output() -> None:
    events = (
        "TYPE      REASON      MESSAGE                                   FIRST-TIME             LAST-TIME\n"
        "Normal    Scheduled   Assigned notebook session x               2026-12-03T12:59:00Z   2026-12-03T12:59:00Z\n"
        "Warning   Failed      Container exited with code 1 during start-up. Its last output:\n"
        "Traceback (most recent call last):\n"
        "SyntaxError: invalid syntax   2026-12-03T12:59:25Z   2026-12-03T12:59:25Z\n"
    )
    assert warnings(events) == [
        "Failed: Container exited with code 1 during start-up. Its last output:",
        "Traceback (most recent call last):",
        "SyntaxError: invalid syntax",
    ]
    assert warnings("<none>\n") == []


def test_the_context_digest_follows_contents_and_modes_never_times(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    (project / "data").mkdir()
    (project / "data" / "big.fits").write_text("x")
    files = context_files(project)
    assert "data/big.fits" not in files and "start.py" in files and "Dockerfile" in files
    before = context_digest(project, files, {})
    (project / "start.py").touch()
    assert context_digest(project, files, {}) == before
    assert context_digest(project, files, {"ca-certificates/x.crt": "a CA"}) != before
    (project / "start.py").chmod(0o755)
    assert context_digest(project, files, {}) != before
