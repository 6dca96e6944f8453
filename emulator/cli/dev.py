"""dev: build an image from its folder, run it as a session, and run it again on every change."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from emulator.cli.context import pass_settings
from emulator.cli.output import console, console_err, real
from emulator.errors import ConfigError
from emulator.profiles import load_profiles
from emulator.settings import Settings

if TYPE_CHECKING:
    from rich.status import Status

_NAME_RULE = re.compile(r"[^a-z0-9-]+")


class ConsoleNarrator:
    """The loop's story on the terminal: a build's steps on one transient line (piped: Docker's `Step` lines),
    what happened on stdout, each URL on a line of its own, problems on stderr."""

    def __init__(self) -> None:
        self._status: Status | None = None
        self._tty = sys.stderr.isatty()
        self._step = ""  # piped: the step begun, told once it is not taken from the cache

    def _settle(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def step(self, line: str) -> None:
        if not self._tty:
            from emulator.host.builds import STEP  # not at start-up: it brings in the Docker SDK

            if STEP.match(line):
                self._step = line
            elif self._step and "Using cache" not in line:  # the step runs: say so (a rebuild's few)
                console_err.print(self._step, markup=False, highlight=False, soft_wrap=True)
                self._step = ""
            elif self._step:
                self._step = ""
            return
        if self._status is None:
            self._status = real(console_err).status("building")
            self._status.start()
        self._status.update(line[:200])

    def say(self, line: str) -> None:
        self._settle()
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    def url(self, url: str) -> None:
        self._settle()
        click.echo(url)

    def problem(self, text: str) -> None:
        self._settle()
        from rich.markup import escape

        console_err.print(f"[red]✗[/red] {escape(text)}", highlight=False, soft_wrap=True)


def _mounts(settings: Settings, given: tuple[str, ...]) -> tuple[tuple[str, ...], list[Path]]:
    """`PATH:TARGET` entries with PATH made absolute (from here) and checked to be a folder; and the folders."""
    entries, folders = [], []
    for entry in given:
        source, colon, target = entry.rpartition(":")
        if not colon or not source or not target.startswith("/"):
            raise ConfigError(f"--mount {entry!r}: give PATH:TARGET, TARGET an absolute path inside the session")
        folder = Path(source).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(f"--mount {entry!r}: {folder} is not a folder on this machine")
        entries.append(f"{folder}:{target}")
        folders.append(folder)
    from emulator.core.devmounts import dev_mounts, platform_folders

    # The platform's rules on paths, before a build; it has the last word.
    dev_mounts(entries, "", by_session=False, platform=platform_folders(settings))
    return tuple(entries), folders


ENDINGS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, a kill, the terminal closed


def _stop_on_endings() -> None:
    """SIGTERM and SIGHUP end the loop as Ctrl-C does: its session deleted."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for ending in ENDINGS[1:]:
        signal.signal(ending, interrupt)


@click.command()
@click.argument("folder", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--type", "session_type", default=None, help="Session type (default: the image's label says).")
@click.option("--name", default=None, help="Session name (default: DIR's name).")
@click.option("--image", "tag", default=None, help="The image to build (default: DIR's name:dev, as init-image).")
@click.option(
    "--mount",
    "mounts",
    multiple=True,
    metavar="PATH:TARGET",
    help="Bind-mount a folder of this machine read-write at TARGET in the session (repeatable); edits there "
    "need no rebuild.",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds a new session may take to start.")
@pass_settings
def dev(
    settings: Settings,
    folder: Path,
    session_type: str | None,
    name: str | None,
    tag: str | None,
    mounts: tuple[str, ...],
    timeout: float,
) -> None:
    """Build DIR's image, run it as a session, and rebuild and replace the session on every change; Ctrl-C
    deletes it.

    \b
    The build is `docker build` of DIR with the CAs this machine trusts, checked as `emulate validate
    --static-only` checks; the session runs on the platform (`emulate up`). A change to DIR rebuilds (the layer
    cache kept) and, once the new session runs, replaces the old one (same name, same /arc); a failed build or
    start is shown and the old session keeps running.

    \b
    Example:
      emulate init-image notebook astro && emulate dev astro
      emulate dev astro --mount astro/notebooks:/opt/notebooks
    """
    from emulator.client.http import EmulatorClient
    from emulator.host import dev as loop
    from emulator.host import watching
    from emulator.runtime.docker import connect
    from emulator.scaffold import default_image

    types = loop.dev_types(load_profiles(settings.profiles_dir))
    if session_type is not None and session_type not in types:
        raise ConfigError(
            f"emulate dev runs {', '.join(types)} sessions, not {session_type!r} (a desktop-app needs a desktop, "
            "a headless job ends: test those with `emulate validate` and the project's tests)"
        )
    entries, mounted = _mounts(settings, mounts)
    folder = folder.resolve()
    label = _NAME_RULE.sub("-", folder.name.lower()).strip("-")[:63] or "dev"
    request = loop.DevRequest(folder, tag or default_image(folder), name or label, session_type, entries, timeout)
    api = EmulatorClient(settings.layout)
    api.context()  # the platform answers, or the error says to start it (`emulate up`), before any build
    narrator = ConsoleNarrator()
    session = loop.DevLoop(settings, api, connect(), request, narrator)
    _stop_on_endings()
    watch = watching.FolderWatch(folder, watching.ChangeFilter(folder, mounted))  # from before the first build
    try:
        session.cycle()
        narrator.say(f"watching {folder} (Ctrl-C deletes the session and stops)")
        while True:
            session.cycle(watch.next())
    except KeyboardInterrupt:
        pass
    finally:
        for ending in ENDINGS:
            signal.signal(ending, signal.SIG_IGN)  # the sessions go, whatever is pressed now
        watch.close()
        for gone in session.close():
            narrator.say(f"deleted {gone}")
    narrator.say("stopped")


COMMANDS = [dev]
