"""`emulate dev DIR`: the image developer's edit-run loop.

One cycle: build the folder (builds.py: the CAs this machine trusts, the engine's layer cache, nothing at all
when the context has not changed), check the image as `emulate validate --static-only` does, and run it as
its session type on the running platform; the cycle runs once at the start and again on every change to the
folder (watching.py). A session that runs is replaced only by one that runs: the new session is launched
beside it (same name, same owner, so the same /arc), and the old one deleted once the new one is Running;
where the session limit leaves no room for both, the old one goes first. A failed build, an image that fails
its checks or a session that does not start is told in words (the build's or the session's last lines), and
the session that ran keeps running.

Everything the loop says goes through a `Narrator` (the CLI's prints it); nothing here prints.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors

from emulator import labels
from emulator.client.http import EmulatorClient
from emulator.errors import EmulatorError, InvalidRequest, NotFound
from emulator.host.builds import BuildFailed, Built, build_folder
from emulator.host.validate import Finding, failures, static_checks
from emulator.profiles import Profile, load_profiles
from emulator.runtime.docker import docker_errors
from emulator.settings import Settings

POLL = 0.05  # seconds between looks at a starting session (more often costs the service, on the session's cores)
FINAL = ("Succeeded", "Completed", "Failed")
AT_THE_LIMIT = "has reached the maximum of"  # skaha's words for the session limit
LOG_LINES = 15


class Narrator(Protocol):
    def step(self, line: str) -> None:
        """A build's progress (a line of Docker's output)."""

    def say(self, line: str) -> None:
        """What happened."""

    def url(self, url: str) -> None:
        """A session's connect URL."""

    def problem(self, text: str) -> None:
        """Something that failed, in words; the loop goes on."""


class ImageProblem(EmulatorError):
    """The image cannot run as asked (its type label, its static checks, a start that failed)."""


@dataclass(frozen=True)
class DevRequest:
    folder: Path
    tag: str  # the image the folder is built into
    name: str  # the session's name
    session_type: str | None = None  # None: from the image's label
    mounts: tuple[str, ...] = ()  # SOURCE:TARGET, the sources absolute
    timeout: float = 300.0  # seconds a new session may take to run


@dataclass(frozen=True)
class Live:
    session_id: str
    image_id: str


def dev_types(profiles: dict[str, Profile]) -> list[str]:
    """The types `emulate dev` runs: interactive sessions that launch on their own (a desktop-app needs a
    desktop, a job ends)."""
    return sorted(t for t, p in profiles.items() if p.interactive and p.attaches_to is None)


def session_type_of(image_labels: dict[str, str], asked: str | None, types: list[str]) -> str:
    """The type to run the image as: the one asked for, which its label must not contradict, or the one
    interactive type its label names."""
    declared = labels.image_session_types(image_labels)
    key = labels.IMAGE_SESSION_TYPES
    if asked is not None:
        if declared is not None and asked not in declared:
            raise ImageProblem(
                f"the image's label {key}={','.join(declared)} names other types than {asked}: the platform "
                f"refuses it as a {asked} (image/type mismatch); change the LABEL, or run it as one of those types "
                "with --type"
            )
        return asked
    if declared is None:
        raise ImageProblem(f'the image has no {key} label: add LABEL {key}="<type>" to the Dockerfile, or give --type')
    runnable = [t for t in declared if t in types]
    if len(runnable) != 1:
        some = f"names {', '.join(runnable)}" if runnable else f"names no type emulate dev runs ({', '.join(types)})"
        raise ImageProblem(f"the image's label {key}={','.join(declared)} {some}: give --type")
    return runnable[0]


_EVENT = re.compile(r"^(Normal|Warning)\s+(\S+)\s+(.*)$")
_EVENT_TIMES = re.compile(r"\s+\S+Z\s+\S+Z$")


def warnings(events: str) -> list[str]:
    """The warning events of skaha's events table (kubectl's columns), as `Reason: message` lines; a message's
    own lines (a failure's last output) follow it, and its first and last times go."""
    lines: list[str] = []
    keep = False
    for line in events.rstrip().splitlines()[1:]:  # under the header
        event = _EVENT.match(line)
        if event is not None:
            keep = event.group(1) == "Warning"
            line = f"{event.group(2)}: {event.group(3)}"
        if keep:
            lines.append(_EVENT_TIMES.sub("", line))
    return lines


def last_lines(text: str, count: int = LOG_LINES) -> str:
    kept = text.rstrip().splitlines()[-count:]
    return "\n".join(f"  {line}" for line in kept) if kept else "  (no output)"


class DevLoop:
    def __init__(
        self,
        settings: Settings,
        api: EmulatorClient,
        engine: docker.DockerClient,
        request: DevRequest,
        narrator: Narrator,
        *,
        launch_first: bool = True,
    ) -> None:
        """`launch_first`: a replacement starts beside the session it replaces (False: deletes it first)."""
        self._settings = settings
        self._api = api
        self._engine = engine
        self._request = request
        self._say = narrator
        self._launch_first = launch_first
        self._profiles = load_profiles(settings.profiles_dir)
        self._helper = labels.platform_labels(settings.instance, labels.ROLE_HELPER)
        self.live: Live | None = None
        self._starting: str | None = None  # a session being started, deleted if the loop ends meanwhile
        self._tried: str | None = None  # the image last launched (or tried): the same one is not tried again
        self._advice: list[str] = []  # the static checks' advice last told
        self.cycles = 0

    # --- one cycle --------------------------------------------------------------------------

    def cycle(self, changed: list[str] | None = None) -> bool:
        """Build, check and run the folder's image; True when a new session runs. Failures are told, not raised,
        but for the first launch's refusal by the platform (its request is wrong: a name, a mount, the limit)."""
        first = self.cycles == 0
        self.cycles += 1
        if changed:
            shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
            self._say.say(f"changed: {shown}; rebuilding")
        try:
            built = build_folder(self._settings, self._request.folder, self._request.tag, self._say.step, self._engine)
            if built.image_id == self._tried:
                self._say.say(f"{self._request.tag} is unchanged: nothing to do")
                return False
            if self._tried is not None and (self.live is None or self._tried != self.live.image_id):
                self._drop_image(self._tried, superseded_by=built.image_id)  # an image that never ran
            self._tried = built.image_id
            tag = self._request.tag
            self._say.say(f"built {tag} in {built.seconds:.1f} s" if built.built else f"{tag} is current")
            self._run(built)
            return True
        except BuildFailed as exc:
            self._say.problem(f"{exc.message}{self._keeping()}")
        except InvalidRequest as exc:
            if first:
                raise
            self._say.problem(f"the platform refused the launch: {exc.message}{self._keeping()}")
        except EmulatorError as exc:
            self._say.problem(f"{exc.message}{self._keeping()}")
        return False

    def _keeping(self) -> str:
        return f"\n{self.live.session_id} keeps running" if self.live else ""

    def _profile(self, built: Built) -> Profile:
        """The profile of the type the image runs as (its label, or --type, which it must not contradict)."""
        with docker_errors():
            image_labels = self._engine.images.get(built.image_id).labels or {}
        return self._profiles[session_type_of(image_labels, self._request.session_type, dev_types(self._profiles))]

    def _told(self, findings: list[Finding], session_type: str) -> None:
        """The static checks' advice (when it changed) and failures, as `emulate validate` tells them; an image
        that fails one is not kept."""
        failed = failures(findings)
        advice = [_finding_line(f) for f in findings if not f.ok and f.warning]
        if advice != self._advice or failed:
            for line in advice:
                self._say.say(line)
        self._advice = advice
        if failed:
            lines = "\n".join(_finding_line(f) for f in failed)
            tag = self._request.tag
            raise ImageProblem(f"{tag} fails {len(failed)} check(s) as a {session_type} session:\n{lines}")

    def _run(self, built: Built) -> None:
        """Start the image's session; once it runs, the one it replaces goes."""
        profile = self._profile(built)
        old = self.live
        if old is not None and not self._launch_first:
            self._delete(old.session_id, f"deleted {old.session_id}; starting its successor")
            old = self.live = None
        started = time.monotonic()
        session_id, session = self._start(built, profile)
        self.live = Live(session_id, built.image_id)
        self._say.say(f"{session_id} is Running ({time.monotonic() - started:.1f} s)")
        self._say.url(str(session.get("connectURL", "")))
        if old is not None and session_id != old.session_id:
            self._delete(old.session_id, f"replaced {old.session_id}")
            self._drop_image(old.image_id, superseded_by=built.image_id)

    def _start(self, built: Built, profile: Profile) -> tuple[str, dict[str, Any]]:
        """Launch the image's session, checking the image meanwhile (the checks take a helper container's time,
        which the session's start hides); its id and JSON once it runs. One that does not run, or whose image
        fails a check, is deleted; one still starting when the loop is interrupted is left to `close`."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checks") as pool:
            checks = pool.submit(static_checks, self._engine, built.image_id, profile, self._helper)
            session_id = self._launch(profile)
            self._starting = session_id
            try:
                self._told(checks.result(), profile.type)
                session = self._wait(session_id)
            except EmulatorError:
                self._delete(session_id)
                self._starting = None
                raise
        self._starting = None
        return session_id, session

    def _launch(self, profile: Profile) -> str:
        wanted: dict[str, Any] = dict(
            name=self._request.name, image=self._request.tag, type=profile.type, mount=list(self._request.mounts)
        )
        try:
            return self._api.launch(**wanted)
        except InvalidRequest as exc:
            if self.live is None or AT_THE_LIMIT not in exc.message:
                raise
        old = self.live.session_id
        self._delete(old, f"at the session limit: deleted {old} before starting its successor")
        self.live = None
        return self._api.launch(**wanted)

    def _wait(self, session_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self._request.timeout
        while True:
            session = self._api.session(session_id)
            if session["status"] == "Running":
                return session
            if session["status"] in FINAL:
                raise ImageProblem(f"{session_id} did not start ({session['status']}):\n{self._why(session_id)}")
            if time.monotonic() > deadline:
                logs = last_lines(self._api.logs(session_id))
                raise ImageProblem(
                    f"{session_id} was not Running after {self._request.timeout:.0f} s (--timeout); "
                    f"its last output:\n{logs}"
                )
            time.sleep(POLL)

    def _why(self, session_id: str) -> str:
        """A failed start in the platform's words: its warnings (the failure's holds the app's last output)."""
        told = warnings(self._api.events(session_id)) or [f"(no warning: see `emulate events {session_id}`)"]
        return "\n".join(f"  {line}" for line in told)

    # --- the end ----------------------------------------------------------------------------

    def _delete(self, session_id: str, told: str | None = None) -> None:
        try:
            self._api.delete(session_id)
        except NotFound:
            return
        if told:
            self._say.say(told)

    def _drop_image(self, image_id: str, superseded_by: str) -> None:
        """An image of the loop's that a newer one replaced, once nothing names it (as `docker image prune` would):
        a long loop leaves no pile of them."""
        try:
            if image_id != superseded_by and not self._engine.images.get(image_id).tags:
                self._engine.images.remove(image_id)
        except docker.errors.APIError:  # in use elsewhere, or gone already: it stays, or it is gone
            pass

    def close(self) -> list[str]:
        """Delete the loop's sessions (the one running, any being started); their ids."""
        gone = [found for found in (self._starting, self.live.session_id if self.live else None) if found]
        for session_id in gone:
            self._delete(session_id)
        self._starting, self.live = None, None
        return gone


def _finding_line(finding: Finding) -> str:
    mark = "!" if finding.warning else "✗"
    fix = f" → {finding.fix}" if finding.fix else ""
    return f"{mark} {finding.check}: {finding.detail}{fix}"
