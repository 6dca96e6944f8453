"""What the CLI loads: session commands reach the service over HTTP and never load the engine's SDK."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(statement: str) -> set[str]:
    probe = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def _named(*modules: str) -> tuple[str, ...]:
    """The modules a check names, each one there: a renamed module fails here, not a check that then guards nothing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    assert not missing, f"no such module: {missing}"
    return modules


def _loaded_any(loaded: set[str], *modules: str) -> set[str]:
    return {m for m in loaded if m.startswith(_named(*modules))}


def _contracts() -> list[dict[str, list[str]]]:
    contracts: list[dict[str, list[str]]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]["contracts"]
    return contracts


def test_every_module_the_import_contracts_name_exists() -> None:
    named: set[str] = set()
    for contract in _contracts():
        named.update(part.strip() for layer in contract.get("layers", []) for part in layer.split("|"))
        named.update(contract.get("source_modules", []), contract.get("forbidden_modules", []))
        named.update(part.strip() for line in contract.get("ignore_imports", []) for part in line.split("->"))
    assert len(named) > 20
    _named(*sorted(named))


def test_every_package_and_top_level_module_is_under_a_contract() -> None:
    covered = {part.strip() for c in _contracts() for layer in c.get("layers", []) for part in layer.split("|")}
    covered |= {name for c in _contracts() for name in c.get("source_modules", [])}
    top = {p.stem for p in (ROOT / "emulator").glob("*.py") if p.stem not in {"__init__", "__main__"}}
    packages = {p.parent.name for p in (ROOT / "emulator").glob("*/__init__.py")}
    assert {f"emulator.{name}" for name in top | packages} - covered == set()


def test_the_cli_and_its_session_commands_load_neither_docker_nor_the_brain() -> None:
    loaded = _modules_after("import emulator.cli, emulator.cli.sessions")
    assert "docker" not in loaded and "fastapi" not in loaded
    assert not _loaded_any(loaded, "emulator.core", "emulator.runtime", "emulator.api", "emulator.host")


def test_the_lazy_command_table_names_every_command_in_its_module() -> None:
    import importlib

    from emulator.cli import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        names = {command.name for command in importlib.import_module(f"emulator.cli.{module}").COMMANDS}
        assert names == {name for name, where in COMMAND_MODULES.items() if where == module}, module


def test_emulate_ps_loads_only_what_it_needs() -> None:
    loaded = _modules_after("from emulator.cli import cli; import click; cli.get_command(click.Context(cli), 'ps')")
    assert not _loaded_any(loaded, "emulator.bundle", "emulator.cli.bundle", "emulator.cli.images", "emulator.host")
    assert "pydantic" not in loaded  # neither the settings nor the user model: only the layout and a token
    # Its HTTP is the standard library's, its table plain when piped, its token from the users file's JSON copy
    assert not {m for m in loaded if m.split(".")[0] in _named("httpx", "rich", "yaml")}


def test_the_pytest_plugin_loads_only_pytest() -> None:
    """pytest imports it in every run of every project where skaha-emulator is installed."""
    loaded = _modules_after("import emulator.testkit.plugin")
    heavy = _named("docker", "httpx", "pydantic", "testcontainers", "emulator.core", "emulator.testkit.session")
    assert not {m for m in loaded if m.split(".")[0] in heavy or m in heavy}
