"""broadcast: the message to the room, the banner on every dashboard, over the service's API (an admin's)."""

from __future__ import annotations

import click

from emulator.cli.context import pass_layout
from emulator.client.http import admin_client
from emulator.errors import InvalidRequest
from emulator.layout import Layout


@click.command()
@click.argument("text", nargs=-1)
@click.option("--clear", is_flag=True, help="Take the message down.")
@pass_layout
def broadcast(layout: Layout, text: tuple[str, ...], clear: bool) -> None:
    """Show TEXT at the top of every user's dashboard (one line, up to 500 characters), take it down with
    --clear, or with neither print the message shown now (nothing when there is none).

    It asks the service as an admin: with the first admin's token in the users file, or EMULATE_TOKEN's.
    Open dashboards show a new message within a few seconds, without a reload.

    \b
    Example:
      emulate broadcast We restart at 14:00
      emulate broadcast
      emulate broadcast --clear
    """
    if text and clear:
        raise InvalidRequest("give the message or --clear, not both")
    client = admin_client(layout)
    if clear:
        cleared = client.clear_broadcast()
        click.echo("the message to the room is taken down" if cleared else "there was no message to take down")
    elif text:
        shown = client.set_broadcast(" ".join(text))
        click.echo(f"shown on every dashboard: {shown['text']}")
    else:
        current = client.broadcast()
        if current is None:
            click.echo("no message to the room (set one with `emulate broadcast TEXT`)", err=True)
            return
        click.echo(current["text"])
        click.echo(f"(set by {current['setBy']} at {current['setAt']})", err=True)


COMMANDS = [broadcast]
