"""`emulate init-image`: what it writes, where, and what it refuses (leaving nothing behind)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from emulator.errors import ConfigError
from emulator.scaffold import TEMPLATES, TYPES, default_image, init_image, render
from emulator.scaffold.action import uses_value
from emulator.settings import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
README_EXAMPLE = {
    "IMAGE": "myorg/astro:dev",
    "TYPE": "notebook",
    "EMULATOR": "skaha-emulator",
    "ACTION": uses_value("skaha-emulator"),
}


@pytest.mark.parametrize("session_type", TYPES)
def test_each_type_gets_a_whole_project(tmp_path: Path, session_type: str) -> None:
    target = tmp_path / "My Image"
    written = {str(p) for p in init_image(session_type, target, image="myorg/thing:dev")}
    assert {
        "Dockerfile",
        "README.md",
        "tests/test_image.py",
        ".github/workflows/image.yml",
        ".gitlab-ci.yml",
    } <= written
    assert {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()} == written
    dockerfile = (target / "Dockerfile").read_text()
    assert dockerfile.splitlines()[0].startswith("#") and "FROM debian:bookworm-slim" in dockerfile
    assert f'LABEL io.canfar.skaha.session.type="{session_type}"' in dockerfile
    for path in target.rglob("*"):
        if path.is_file():
            assert "__" not in path.read_text().replace("__pycache__", "").replace("__name__", ""), path
        if path.suffix == ".py":
            ast.parse(path.read_text())
        if path.suffix == ".sh":
            assert path.stat().st_mode & 0o111
    assert "myorg/thing:dev" in (target / "tests" / "test_image.py").read_text()


def test_the_default_image_name_comes_from_the_folder(tmp_path: Path) -> None:
    assert default_image(tmp_path / "My Astro_Notebook!") == "my-astro_notebook:dev"
    init_image("notebook", tmp_path / "Astro")
    assert 'os.environ.get("SKAHA_IMAGE", "astro:dev")' in (tmp_path / "Astro" / "tests" / "test_image.py").read_text()


def test_a_folder_with_files_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an empty folder"):
        init_image("notebook", target)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    init_image("headless", empty)  # an empty folder is fine
    assert (empty / "Dockerfile").exists()


def test_types_the_platform_owns_are_refused(tmp_path: Path) -> None:
    for session_type in ("desktop", "carta", "firefly", "nonsense"):
        with pytest.raises(ConfigError, match="init-image makes notebook, desktop-app, contributed, headless"):
            init_image(session_type, tmp_path / session_type)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("template", ["dot-github/workflows/image.yml", "dot-gitlab-ci.yml"])
def test_the_readme_shows_the_ci_jobs_init_image_writes(template: str) -> None:
    job = render((TEMPLATES / "common" / template).read_text(), README_EXAMPLE)
    assert job.strip() in README, f"README's copy of {template} differs from what init-image writes"
