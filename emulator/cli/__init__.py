"""The `emulate` command: a thin client of the service (and of Docker, for up/down/images)."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from emulator import __version__
from emulator.cli import bundle, images, platform, sessions, users, validate
from emulator.cli.output import console_err
from emulator.errors import EmulatorError
from emulator.settings import load_settings

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
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
    ctx.obj = load_settings(instance=instance)


for module in (platform, sessions, images, bundle, users, validate):
    for command in module.COMMANDS:
        cli.add_command(command)


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
        console_err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug of ours: still one line, no traceback (engine errors are EmulatorErrors)
        console_err.print(
            f"[red]error:[/red] {escape(f'{exc.__class__.__name__}: {exc}')}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
