"""The `emulate` command: a thin client of the service (and of Docker, for up/down/images)."""

from __future__ import annotations

import importlib
import os
import sys

import click

from emulator import __version__
from emulator.cli.context import CliContext
from emulator.cli.output import console_err
from emulator.errors import EmulatorError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# The module of each command: a command line imports only the one it names, so `emulate ps` never
# loads the bundle, image or validation code (tests/unit/test_layers.py keeps this table complete).
COMMAND_MODULES = {
    **dict.fromkeys(("up", "down", "status", "token", "serve"), "instance"),
    **dict.fromkeys(
        ("launch", "ps", "stats", "nodes", "info", "logs", "events", "renew", "snapshot", "delete", "open", "context"),
        "sessions",
    ),
    "images": "images",
    "bundle": "bundle",
    "users": "users",
    "broadcast": "broadcast",
    "usage": "usage",
    "validate": "validate",
    "testkit": "testkit",
    "init-image": "scaffold",
    "dev": "dev",
    "doctor": "doctor",
}


class LazyGroup(click.Group):
    """click's documented lazy-loading group: subcommands are imported when they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMAND_MODULES:
            return super().get_command(ctx, name)
        module = importlib.import_module(f"emulator.cli.{COMMAND_MODULES[name]}")
        found: click.Command = next(command for command in module.COMMANDS if command.name == name)
        return found


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--instance",
    envvar="EMULATE_INSTANCE",
    default=None,
    help="Instance name (default 'default'); separate instances never touch each other.",
)
@click.version_option(__version__, prog_name="emulate")
@click.pass_context
def cli(ctx: click.Context, instance: str | None) -> None:
    """Run CANFAR Science Platform (skaha) sessions locally, under the real contract.

    \b
    Example:
      emulate up                 # start the platform, print its URL
      emulate launch notebook    # a JupyterLab, as CANFAR launches it
      emulate ps                 # your sessions
    """
    ctx.obj = CliContext(instance)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        console_err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EmulatorError as exc:
        from rich.markup import escape

        console_err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug of ours (engine and HTTP errors arrive as EmulatorErrors)
        if os.environ.get("EMULATE_DEBUG"):
            raise  # the whole traceback, for a bug report
        from rich.markup import escape

        console_err.print(
            f"[red]error:[/red] {escape(f'{exc.__class__.__name__}: {exc}')}\n"
            "This is a bug in skaha-emulator; run again with EMULATE_DEBUG=1 for the traceback to report.",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
