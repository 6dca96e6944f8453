"""The GitHub Action (.github/actions/validate) holds together: the inputs its expressions use exist and each
input is used, its script step passes exactly the variables run.sh reads, and the workflow `init-image` writes
uses it; and the docs page about it is linked and its links resolve."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from emulator.scaffold import init_image
from emulator.scaffold.action import ACTION_FOLDER, PLACEHOLDER, action_reference
from emulator.settings import REPO_ROOT
from tests.action import ACTION, action, script_step

ACTION_YML = (ACTION / "action.yml").read_text()
SCRIPT = (ACTION / "run.sh").read_text()
DOCS = REPO_ROOT / "docs" / "from-docker-run.md"


def test_every_input_is_described_has_a_text_default_and_is_used() -> None:
    inputs = action()["inputs"]
    used = set(re.findall(r"\binputs\.([\w-]+)", ACTION_YML))
    assert used == set(inputs), "inputs used in expressions differ from those declared"
    for name, spec in inputs.items():
        assert spec["description"].strip(), name
        assert isinstance(spec["default"], str), f"{name}'s default is not a string (YAML turned it into a value)"


def test_the_script_step_passes_exactly_what_run_sh_reads_and_nothing_through_its_text() -> None:
    step = script_step()
    assert step["shell"] == "bash"
    assert step["run"] == 'bash "$GITHUB_ACTION_PATH/run.sh"'  # no `${{ }}` pasted into a shell line
    assert "${{" not in step["run"]
    read = set(re.findall(r"\$\{?(SKAHA_CI_\w+)", SCRIPT))
    assert read == set(step["env"]), "run.sh and action.yml disagree on the SKAHA_CI_* variables"


def test_the_reports_are_uploaded_whatever_happened() -> None:
    (upload,) = [s for s in action()["runs"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload["if"].startswith("always()")
    assert upload["with"]["path"] == "${{ inputs.junit }}"


def test_the_script_parses_and_stops_at_the_first_unexpected_error() -> None:
    subprocess.run(["bash", "-n", str(ACTION / "run.sh")], check=True)
    assert "set -euo pipefail" in SCRIPT


def test_the_default_emulator_is_this_repository_three_folders_above_theaction() -> None:
    assert "$GITHUB_ACTION_PATH/../../.." in SCRIPT
    root = (ACTION / ".." / ".." / "..").resolve()
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"] == "skaha-emulator"


@pytest.mark.parametrize(
    ("requirement", "reference"),
    [
        ("skaha-emulator @ git+https://github.com/acme/skaha-emulator.git@abc123", "acme/skaha-emulator@abc123"),
        ("skaha-emulator @ git+https://github.com/acme/emu", "acme/emu@main"),
        ("skaha-emulator@git+ssh://git@github.com/acme/skaha.emu.git@v1.2#egg=x", "acme/skaha.emu@v1.2"),
        ("skaha-emulator @ git+https://gitlab.com/acme/skaha-emulator.git@abc", None),
        ("skaha-emulator", None),
        ("skaha-emulator==0.1", None),
    ],
)
def test_the_action_is_named_where_the_emulator_comes_from_github(requirement: str, reference: str | None) -> None:
    expected = None if reference is None else reference.replace("@", f"/{ACTION_FOLDER}@", 1)
    assert action_reference(requirement) == expected


def test_a_new_projects_workflow_uses_the_action(tmp_path: Path) -> None:
    init_image("notebook", tmp_path / "a", emulator="skaha-emulator @ git+https://github.com/acme/emu.git@abc")
    workflow = yaml.safe_load((tmp_path / "a" / ".github" / "workflows" / "image.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["test"]["steps"] if ACTION_FOLDER in s["uses"]]
    assert step["uses"] == f"acme/emu/{ACTION_FOLDER}@abc"
    assert set(step["with"]) <= set(action()["inputs"])
    init_image("notebook", tmp_path / "b")
    text = (tmp_path / "b" / ".github" / "workflows" / "image.yml").read_text()
    assert f"uses: {PLACEHOLDER}  # skaha-emulator's GitHub repository" in text


def _links(markdown: str) -> list[str]:
    inline = re.findall(r"\]\(([^)\s]+)\)", markdown)
    defined = re.findall(r"^\[[^\]]+\]:\s*(\S+)", markdown, flags=re.MULTILINE)
    return [link for link in inline + defined if not link.startswith(("http://", "https://", "mailto:"))]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation but hyphens dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", [REPO_ROOT / "README.md", DOCS], ids=lambda p: p.name)
def test_local_links_and_anchors_resolve(page: Path) -> None:
    for link in _links(page.read_text()):
        target, _, anchor = link.partition("#")
        file = (page.parent / target).resolve() if target else page
        assert file.exists(), f"{page.name} links to {link}, which is not there"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file.read_text()), f"{page.name} links to {link}: no such heading"


def test_the_readme_links_to_the_docker_run_page() -> None:
    assert "(docs/from-docker-run.md)" in (REPO_ROOT / "README.md").read_text()
