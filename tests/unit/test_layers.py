"""What the CLI loads: session commands reach the service over HTTP and never load the engine's SDK."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    probe = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_the_cli_and_its_session_commands_load_neither_docker_nor_the_brain() -> None:
    loaded = _modules_after("import emulator.cli, emulator.cli.sessions")
    assert "docker" not in loaded
    assert not {m for m in loaded if m.startswith(("emulator.core", "emulator.runtime", "emulator.api"))}
    assert "emulator.platform" not in loaded and "fastapi" not in loaded


def test_the_lazy_command_table_names_every_command_in_its_module() -> None:
    import importlib

    from emulator.cli import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        names = {command.name for command in importlib.import_module(f"emulator.cli.{module}").COMMANDS}
        assert names == {name for name, where in COMMAND_MODULES.items() if where == module}, module


def test_emulate_ps_loads_only_what_it_needs() -> None:
    loaded = _modules_after("from emulator.cli import cli; import click; cli.get_command(click.Context(cli), 'ps')")
    assert not {m for m in loaded if m.startswith(("emulator.bundle", "emulator.cli.bundle", "emulator.cli.images"))}
    assert "pydantic" not in loaded  # neither the settings nor the user model: only the layout and a token


def test_the_pytest_plugin_loads_only_pytest() -> None:
    """pytest imports it in every run of every project where skaha-emulator is installed."""
    loaded = _modules_after("import emulator.testkit.plugin")
    heavy = {"docker", "httpx", "pydantic", "testcontainers", "emulator.core", "emulator.testkit.session"}
    assert not {m for m in loaded if m.split(".")[0] in heavy or m in heavy}
