"""The GitHub Action (.github/actions/validate) holds together: the inputs its expressions use exist and each
input is used, its script step passes exactly the variables run.sh reads, and the workflow `init-image` writes
uses it."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from emulator.scaffold import init_image
from emulator.scaffold.action import ACTION_FOLDER, PLACEHOLDER, action_reference
from tests.action import ACTION, action, script_step

ACTION_YML = (ACTION / "action.yml").read_text()
SCRIPT = (ACTION / "run.sh").read_text()


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
