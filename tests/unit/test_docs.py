"""The README's command table and `emulate --help` say the same thing (as sqlite-utils' test_docs)."""

from __future__ import annotations

import re

import click
import pytest

from emulator.cli import cli
from emulator.settings import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    context = click.Context(group)
    for name in group.list_commands(context):  # the lazy group imports each command's module here
        command = group.get_command(context, name)
        assert command is not None, f"`emulate {prefix}{name}` is listed but cannot be loaded"
        if command.hidden:
            continue
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{path} "))
        else:
            found[path] = command
    return found


COMMANDS = _commands(cli)


def _table_spans() -> dict[str, str]:
    """Each command path -> the text of the README table's code spans that document it."""
    documented: dict[str, str] = {}
    for line in README.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for span in re.findall(r"`([^`]+)`", first_cell):
            words = span.removeprefix("emulate ").split()
            for size in (2, 1):
                path = " ".join(words[:size])
                if path in COMMANDS:
                    documented[path] = documented.get(path, "") + " " + span
                    break
    return documented


SPANS = _table_spans()


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_has_help_and_a_row_naming_each_option(path: str) -> None:
    command = COMMANDS[path]
    assert (command.help or "").strip(), f"`emulate {path}` has no help text"
    assert path in SPANS, f"`emulate {path}` is missing from the README's command table"
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden or "--help" in param.opts:
            continue
        names = [*param.opts, *param.secondary_opts]
        assert any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", SPANS[path]) for n in names), (
            f"README's row for `emulate {path}` does not mention {'/'.join(names)}"
        )


def test_every_row_of_the_table_is_a_real_command() -> None:
    for line in README.splitlines():
        if line.startswith("| `emulate "):
            words = re.findall(r"`emulate ([a-z-]+)", line)
            known = cli.list_commands(click.Context(cli))
            assert all(word in known for word in words), f"README documents a missing command: {line}"


def test_the_global_options_are_documented() -> None:
    for param in cli.params:
        if isinstance(param, click.Option) and not param.hidden and "--help" not in param.opts:
            assert any(name in README for name in param.opts), f"README does not mention {param.opts}"


def test_every_setting_is_in_the_configuration_table() -> None:
    from emulator.settings import Settings

    for name in Settings.model_fields:
        assert f"`EMULATE_{name.upper()}`" in README, f"README's configuration table lacks EMULATE_{name.upper()}"


def test_the_readme_map_names_every_package_and_top_level_module_and_nothing_else() -> None:
    package = REPO_ROOT / "emulator"
    tree = {f"emulator/{p.parent.name}/" for p in package.glob("*/__init__.py")}
    tree |= {f"emulator/{p.name}" for p in package.glob("*.py") if p.stem not in {"__init__", "__main__"}}
    mapped = set(re.findall(r"^\| `(emulator/[a-z_]+(?:/|\.py))` \|", README, flags=re.MULTILINE))
    assert mapped == tree
