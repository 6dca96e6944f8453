"""A session under test: its URL through a gateway, an HTTP client bound to it, commands run as the
session user, its logs and its /arc. The same object in both modes (standalone and attached): what it
offers is read from the session's container, which the platform and the kit make from one spec."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx

from emulator.core import policy
from emulator.core.contract import TOP_LEVEL
from emulator.host import logcheck

if TYPE_CHECKING:
    from docker.models.containers import Container

    from emulator.profiles import Profile
    from emulator.testkit.options import Launch


class SkahaError(Exception):
    """Something the kit was asked that cannot be done (a type without a URL, a bad argument)."""


class ContractBroken(SkahaError):
    """The image did not start as a CANFAR session of its type; the message says which part of the
    contract it broke and what to change."""


def check_args(args: Sequence[str] | None) -> None:
    """skaha joins nothing: it splits the args string on single spaces, so an argument holding a space
    would reach the job as several (a script in the image, or ${IFS}, says it whole)."""
    for arg in args or []:
        if " " in arg:
            raise SkahaError(
                f"skaha splits args on single spaces, so {arg!r} would reach the job as several arguments: "
                "put the command in a script in the image, or write ${IFS} for the spaces"
            )


def refuse_what_canfar_ignores(profile: Profile, options: Launch) -> None:
    """The kit's own refusals, stricter than CANFAR: what it would take and silently not do."""
    if options.env and not profile.batch:
        raise SkahaError(
            f"CANFAR applies env only to headless jobs; a {profile.type} session ignores it "
            "(set defaults in the image instead)"
        )
    if (options.cmd or options.args) and not profile.batch:
        raise SkahaError(f"cmd and args are for headless jobs; a {profile.type} session runs its type's launch")
    dropped = [entry.split("=", 1)[0] for entry in options.env_entries if not policy.parse_env([entry])]
    if dropped:
        raise SkahaError(
            f"CANFAR drops an env entry whose value holds '=' ({', '.join(dropped)}): the job would run without "
            "it; pass such a value another way (a file in /arc, or an argument)"
        )
    check_args(options.args)


class ExecResult(NamedTuple):
    """What docker's and testcontainers' `exec` return, unpackable as `exit_code, output = session.exec(...)`;
    `output` is text here (theirs is bytes)."""

    exit_code: int
    output: str  # stdout and stderr together, as a terminal shows them

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class SkahaSession:
    """One session. `url` is its root through the gateway (`/session/<type>/<id>/`); `http` an httpx client
    bound to it (for a notebook it carries Jupyter's token, attached to a platform its sign-in); `exec` runs
    a command as the session user, in its home, with its environment, as a terminal in the session would."""

    def __init__(
        self,
        *,
        session_id: str,
        session_type: str,
        image: str,
        container: Container,
        url: str | None,
        connect_url: str | None,
        http_params: dict[str, str] | None = None,
        http_headers: dict[str, str] | None = None,
        verify: str | bool = True,
        on_close: Callable[[SkahaSession], None] | None = None,
        on_desktop_app: Callable[[SkahaSession, str], SkahaSession] | None = None,
        log_rules: Callable[[], logcheck.IgnoreRules] | None = None,
        on_discard: Callable[[SkahaSession], None] | None = None,
        reused: bool = False,
        adopted: bool = False,
    ) -> None:
        self.id = session_id
        self.type = session_type
        self.image = image
        self.container = container  # the Docker SDK's container: for what this class does not offer
        self.connect_url = connect_url  # what CANFAR's portal would open (with the app's token)
        self._url = url
        self._http_params = http_params or {}
        self._http_headers = http_headers or {}
        self._verify = verify
        self._http: httpx.Client | None = None
        self._on_close = on_close
        self._on_desktop_app = on_desktop_app
        self._apps: list[SkahaSession] = []
        self._log_rules = log_rules
        self._on_discard = on_discard or on_close
        self.reused = reused  # reuse=True: kept when the test ends, for later tests and runs to adopt
        self.adopted = adopted  # a kept session an earlier test or run launched, taken over as it was
        self.closed = False

    def __repr__(self) -> str:
        return f"<SkahaSession {self.type} {self.id} {self.image}>"

    @property
    def url(self) -> str:
        if self._url is None:
            raise SkahaError(f"a {self.type} session has no URL (no route: it is not served through the gateway)")
        return self._url

    @property
    def http(self) -> httpx.Client:
        """An httpx client whose relative URLs are under the session's root (`session.http.get("api")`)."""
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.url,
                params=self._http_params,
                headers=self._http_headers,
                verify=self._verify,
                timeout=30,
            )
        return self._http

    @property
    def user(self) -> str:
        """The uid:gid the session runs as (never root)."""
        return str(self.container.attrs["Config"]["User"])

    @property
    def arc(self) -> Path:
        """The host folder mounted as /arc in the session."""
        for mount in self.container.attrs.get("Mounts") or []:
            if mount.get("Destination") == TOP_LEVEL:
                return Path(mount["Source"])
        raise SkahaError(f"session {self.id} has no {TOP_LEVEL} mount")

    @property
    def home(self) -> Path:
        """The user's home on the host: `arc / "home" / <user>` (HOME inside the session)."""
        inside = self.environment["HOME"]
        return self.arc / Path(inside).relative_to(TOP_LEVEL)

    @property
    def environment(self) -> dict[str, str]:
        entries = self.container.attrs["Config"].get("Env") or []
        return dict(entry.split("=", 1) for entry in entries if "=" in entry)

    def exec(self, command: str | Sequence[str], *, workdir: str | None = None) -> ExecResult:
        """Run `command` (a shell line, or an argv list) as the session user, in its home (or `workdir`)."""
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        self.container.reload()
        if self.container.status != "running":
            raise SkahaError(f"session {self.id} is not running ({self.container.status}): cannot run {argv!r}")
        config = self.container.attrs["Config"]
        result = self.container.exec_run(
            argv,
            user=config["User"],  # the session user, never the image's USER or root
            workdir=workdir or config.get("WorkingDir") or self.environment.get("HOME"),
            demux=False,
        )
        output = result.output or b""
        return ExecResult(
            int(result.exit_code if result.exit_code is not None else -1), output.decode(errors="replace")
        )

    def logs(self) -> str:
        """The session container's output so far (stdout and stderr)."""
        data: bytes = self.container.logs(stdout=True, stderr=True)
        return data.decode(errors="replace")

    def check_logs(self) -> logcheck.LogScan:
        """The log gates of `emulate validate` over the output so far (tracebacks, FATAL, panic:, out of memory;
        what the image's ignore label and file list passes): ContractBroken showing the lines, else the scan."""
        rules = self._log_rules() if self._log_rules is not None else logcheck.NO_RULES
        if rules.problems:
            raise SkahaError(f"{self.image}'s log ignore patterns cannot be used: {'; '.join(rules.problems)}")
        found = logcheck.scan(self.logs(), rules)
        if not found.ok:
            raise ContractBroken(
                f"{self.image}'s {self.type} session {self.id}: {found.summary()}:\n{found.show()}\n"
                f"Fix what they show; a line that is expected goes in the image's {logcheck.IGNORE_LABEL} label "
                f"or {logcheck.IGNORE_FILE}."
            )
        return found

    def wait(self, timeout: float = 300) -> int:
        """Wait for the session's container to end (a headless job); returns its exit code."""
        deadline = time.monotonic() + timeout
        while True:
            self.container.reload()
            if self.container.status in ("exited", "dead"):
                return int(self.container.attrs["State"]["ExitCode"])
            if time.monotonic() > deadline:
                raise SkahaError(f"session {self.id} still {self.container.status} after {timeout:.0f} s")
            time.sleep(0.1)

    def desktop_app(self, image: str) -> SkahaSession:
        """Attach a desktop-app (an X11 application image) to this desktop, as the portal's launcher does;
        returns the app's session once its container runs. It ends with the desktop."""
        if self._on_desktop_app is None:
            raise SkahaError(f"desktop-apps attach to desktop sessions; this is a {self.type} session")
        app = self._on_desktop_app(self, image)
        self._apps.append(app)
        return app

    def close(self) -> None:
        """Delete the session (its apps first); /arc stays. A reused session is only let go of, kept for the
        next test or run to adopt (its apps are deleted). Closing twice is fine."""
        self._end(self._on_close)

    def discard(self) -> None:
        """Delete the session, a reused one too (the next run that asks for it launches a new one)."""
        self._end(self._on_discard)

    def _end(self, then: Callable[[SkahaSession], None] | None) -> None:
        if self.closed:
            return
        for app in reversed(self._apps):
            app.close()
        if self._http is not None:
            self._http.close()
        if then is not None:
            then(self)
        self.closed = True

    def describe(self) -> dict[str, Any]:
        """What a person needs to look at a kept session."""
        return {
            "id": self.id,
            "type": self.type,
            "image": self.image,
            "url": self._url,
            "connect": self.connect_url,
            "adopted": self.adopted,
        }
