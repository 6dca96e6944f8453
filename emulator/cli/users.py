"""users add | ls | rm | passwd | token | admin | import: the people who may sign in (edits users.yaml; the service
follows)."""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

import click

from emulator.cli.context import pass_settings
from emulator.cli.output import console, console_err, json_option, print_json, table
from emulator.settings import Settings

Detail = str | int | bool | None


def operator() -> str:
    """Who runs this command on this machine: the person behind `sudo`, else the account it runs as."""
    if os.geteuid() == 0 and os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # an account with no passwd entry (a container run with --user)
        return f"uid {os.getuid()}"


def _audit(settings: Settings, action: str, **details: Detail) -> None:
    """The change's line in the platform's audit log (who ran it, from "cli"; never a password or token). A log
    that cannot be written (a state folder this account may not make or write) is said; the change stands."""
    from emulator.core.audit import append

    try:
        append(settings.layout.audit_log, action, operator(), "cli", "ok", **details)
    except OSError as exc:
        console_err.print(f"[yellow]warning:[/yellow] the audit log {settings.layout.audit_log}: {exc.strerror}")


@click.group()
def users() -> None:
    """Add, list and remove the platform's users (for a workshop: `users import`)."""


@users.command()
@click.argument("name")
@click.option("--group", "groups", multiple=True, metavar="GROUP", help="A group to join (repeatable).")
@click.option("--admin", is_flag=True, help="An admin: sees and acts on every user's sessions (the admin page).")
@pass_settings
def add(settings: Settings, name: str, groups: tuple[str, ...], admin: bool) -> None:
    """Add a user; prints a one-time password and an API token (shown only now).

    \b
    Example:
      emulate users add alice --group astro-101
      emulate users add tutor --admin
    """
    from emulator.users.accounts import add_user

    made = add_user(settings.layout.users_file, name, list(groups), admin=admin)
    _audit(settings, "user-add", user=made.name, admin=made.admin, groups=",".join(made.groups))
    role = "; admin" if made.admin else ""
    console.print(f"added {made.name} (uid {made.uid}; groups {', '.join(made.groups) or '-'}{role})")
    click.echo(f"password: {made.password}")
    click.echo(f"token:    {made.token}")


@users.command(name="ls")
@json_option
@pass_settings
def ls(settings: Settings, as_json: bool) -> None:
    """List the users, their uids and groups (never their passwords or tokens)."""
    from emulator.users.file import ensure_users_file, read_users_file

    ensure_users_file(settings.layout.users_file)
    entries = read_users_file(settings.layout.users_file).users
    if as_json:
        print_json(
            [
                {
                    "name": u.name,
                    "uid": u.uid,
                    "gid": u.gid,
                    "groups": [g.name for g in u.groups if g.gid != u.gid],
                    "password": u.password is not None,
                    "admin": bool(u.admin),
                }
                for u in entries
            ]
        )
        return
    table(
        ["NAME", "UID", "GROUPS", "SIGN-IN", "ADMIN"],
        [
            [
                u.name,
                str(u.uid),
                ",".join(g.name for g in u.groups if g.gid != u.gid) or "-",
                "password" if u.password else "token only",
                "admin" if u.admin else "-",
            ]
            for u in entries
        ],
    )


@users.command(name="rm")
@click.argument("name")
@click.option(
    "--keep-sessions", is_flag=True, help="Let their running sessions run to their expiry (by default they end)."
)
@pass_settings
def rm(settings: Settings, name: str, keep_sessions: bool) -> None:
    """Remove a user: their sessions end, their /arc/home is kept, their uid is never given to anyone else.

    \b
    With --keep-sessions their sessions run on until they expire; `emulate users rm NAME` again ends them.
    Adding the same name later gives it back its own uid (and so its home).
    """
    from emulator.users.accounts import remove_user

    removal = remove_user(settings.layout.users_file, name, keep_sessions=keep_sessions)
    _audit(settings, "user-remove", user=name, keep_sessions=removal.keep_sessions, again=removal.again)
    within = f"within {settings.loop_interval:g} s (if the platform is up)"
    if removal.again:
        console.print(f"{name}'s kept sessions end {within}")
        return
    console.print(
        f"removed {name}; their /arc/home/{name} is kept (uid {removal.uid}); that uid will not be given to anyone else"
    )
    if keep_sessions:
        console.print(f"their sessions run on until they expire; `emulate users rm {name}` again ends them")
    else:
        console.print(f"their sessions end {within}")


@users.command()
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.option("--keep-token", is_flag=True, help="Keep their API token (by default it is replaced too).")
@pass_settings
def passwd(settings: Settings, name: str, password_stdin: bool, keep_token: bool) -> None:
    """Give a user a new password (a generated one, printed, unless --password-stdin) and a new API token.

    A reset usually means the credentials leaked, so the token is replaced too (printed; the old one
    stops working) unless --keep-token.
    """
    from emulator.users.accounts import set_password

    given = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and len(given or "") < 8:
        raise click.UsageError("a password needs at least 8 characters")
    reset = set_password(settings.layout.users_file, name, given, keep_token=keep_token)
    _audit(settings, "user-password", user=name, changed="password" + ("" if reset.token is None else ", API token"))
    if given is None:
        click.echo(f"password: {reset.password}")
    else:
        console_err.print(f"password of {name} changed")
    if reset.token is not None:
        click.echo(f"token:    {reset.token}")
        console_err.print(f"{name}'s old API token no longer works")


@users.command(name="token")
@click.argument("name")
@click.option("--rotate", is_flag=True, help="Give them a new token (printed); the old one stops working.")
@pass_settings
def token(settings: Settings, name: str, rotate: bool) -> None:
    """Print a user's API token; with --rotate, replace it first (say, after it leaked).

    \b
    Example:
      emulate users token ada --rotate
    """
    from emulator.users.accounts import rotate_token, user_token

    if not rotate:
        click.echo(user_token(settings.layout.users_file, name))
        return
    rotated = rotate_token(settings.layout.users_file, name)
    _audit(settings, "user-token", user=name, changed="API token")
    click.echo(rotated)
    console_err.print(f"{name}'s old API token no longer works")


@users.command(name="admin")
@click.argument("name")
@click.option("--revoke", is_flag=True, help="Make them an ordinary user again.")
@pass_settings
def admin(settings: Settings, name: str, revoke: bool) -> None:
    """Make a user an admin (the admin page, every user's sessions), or with --revoke an ordinary user again.

    \b
    Example:
      emulate users admin tutor
      emulate users admin tutor --revoke
    """
    from emulator.users.accounts import set_admin

    changed = set_admin(settings.layout.users_file, name, not revoke)
    _audit(settings, "user-admin", user=name, admin=not revoke, changed=changed)
    now = "an ordinary user" if revoke else "an admin"
    console.print(f"{name} is {now}" + ("" if changed else " already"))


@users.command(name="import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), help="Write the credentials sheet here.")
@pass_settings
def import_(settings: Settings, csv_file: Path, sheet: Path | None) -> None:
    """Add a room of users from a CSV file (rows: name,group;group,admin), all or none; prints their credentials.

    The admin column is optional: admin, yes, true or 1 makes that user an admin.

    \b
    Example:
      emulate users import attendees.csv --sheet credentials.txt
    """
    from emulator.users.accounts import import_users
    from emulator.users.accounts import sheet as credentials_sheet

    made = import_users(settings.layout.users_file, csv_file.read_text())
    names = ",".join(m.name for m in made)
    _audit(settings, "user-import", users=names, count=len(made), admins=sum(m.admin for m in made))
    page = credentials_sheet(made, settings.base_url)
    if sheet is None:
        click.echo(page)
    else:
        with os.fdopen(os.open(sheet, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(page)  # passwords: readable by you alone
        console.print(f"added {len(made)} users; their credentials are in {sheet}")


COMMANDS = [users]
