"""reuse=True: a session kept across tests and test runs until what it was made of changes.

Standalone, a run's network and gateway go with the run, so kept sessions live in a home that outlives runs:
your own network and gateway (a loopback port), its state folder (`~/.local/state/skaha-emulator/testkit-reuse`:
the sessions' passwd files, the gateway's table, each kept session's record) and, unless `--skaha-arc` names
one, its own /arc (`~/.local/share/skaha-emulator/testkit-reuse/arc`). All carry the KIT_REUSE label (the state
folder), never the run's owner label, so no run's sweep removes them; `emulate testkit clean` does, when no
run holds the home (each run using it leaves a file named after itself in `holders/`), and never its /arc.

A launch with reuse adopts the kept session of the same slot (type, name and the image as named: a folder's
image keeps its tag) when its key (the image's id, the launch options, the type's profile, /arc) is the same
and it still answers; any other of that slot is deleted and a new one launched. A kept session a test holds is
marked with its run (`kept/<id>.held`), and no other run that shares the home adopts or deletes it while that run
goes on. What a run does in a reused session stays for the next (that is the point): its processes, files,
/scratch and home.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from emulator import labels, naming
from emulator.core.models import Resources, Session, Status
from emulator.gateway.caddy import LISTEN_PORT, OWN_ANSWER
from emulator.layout import Layout
from emulator.session_types import SessionType
from emulator.testkit import leftovers
from emulator.testkit.images import KitImages
from emulator.testkit.options import DEFAULT_LAUNCH, Launch, reuse_key, reuse_slot
from emulator.testkit.ready import AnswersThroughGateway, ExitedAtStart, NeverReady
from emulator.testkit.session import SkahaError, SkahaSession
from emulator.testkit.standalone import StandaloneKit

HOME = "testkit-reuse"
HOLDERS = "holders"
RECORDS = "kept"
HELD = ".held"
ADOPTION_PROBE_SECONDS = 10.0


def home_state() -> Path:
    return Layout(HOME).state_path


def home_arc() -> Path:
    return Layout(HOME).arc_path


def home_instance(state: Path) -> str:
    """One home per user and state folder on an engine (others' homes, and a test's own, stay apart)."""
    mark = f"{socket.gethostname()}:{os.getuid()}:{state}"
    return f"{HOME}-{hashlib.sha256(mark.encode()).hexdigest()[:10]}"


def _record_text(session: Session) -> str:
    return json.dumps(dataclasses.asdict(session), default=lambda value: value.isoformat())


def _record(text: str) -> Session:
    data: dict[str, Any] = json.loads(text)
    data["type"], data["status"] = SessionType(data["type"]), Status(data["status"])
    data["resources"] = Resources(**data["resources"])
    for moment in ("start_time", "expiry_time", "ended_at"):
        if data[moment] is not None:
            data[moment] = datetime.fromisoformat(data[moment])
    return Session(**data)


class _Running:
    """What a wait strategy asks of a container, for one that is already running."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def reload(self) -> None:
        self._container.reload()

    def get_wrapped_container(self) -> Any:
        return self._container


class ReuseHome(StandaloneKit):
    """The home of kept sessions (see the module's words); a run's StandaloneKit starts it on first use."""

    def __init__(
        self,
        arc: Path | None,
        profiles_dir: Path | None,
        gateway_image: str,
        client: docker.DockerClient,
        images: KitImages,
    ) -> None:
        super().__init__(arc or home_arc(), profiles_dir, gateway_image, client, open_arc=arc is None)
        self.images = images

    def _place(self) -> tuple[str, Path, dict[str, str]]:
        state = home_state()
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)  # private to you, as a run's own: passwd files named by session id (a notebook's token)
        (state / RECORDS).mkdir(exist_ok=True)
        (state / HOLDERS).mkdir(exist_ok=True)
        return home_instance(state), state, {labels.KIT_REUSE: str(state)}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One run at a time makes, adopts or replaces what the home holds (two runs may share it)."""
        with (self.state / "lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def start(self) -> ReuseHome:
        with self._locked():
            try:
                (self.state / HOLDERS / self.owner).touch()
                self._prepare_folders()
                if not self._adopt_network():
                    self._make_network()
                if not self._adopt_gateway():
                    self._start_gateway()
            except BaseException:
                self.close()
                raise
        return self

    def _adopt_network(self) -> bool:
        name = naming.user_network(self.settings.prefix, self.user.name)
        if not any(found.name == name for found in self._client.networks.list(names=[name])):
            return False
        self._make_network_handle(name)
        return True

    def _make_network_handle(self, name: str) -> None:
        from testcontainers.core.network import Network

        self._network = Network()
        self._network.name = name  # all a container asks of it

    def _adopt_gateway(self) -> bool:
        """The home's gateway as a run before this one left it, when it still runs this very table."""
        _, digest = self._gateway_config()
        try:
            found = self._client.containers.get(naming.gateway_container(self.settings.prefix))
        except docker.errors.NotFound:
            return False
        published = (found.ports or {}).get(f"{LISTEN_PORT}/tcp") or []
        if found.status != "running" or found.labels.get(labels.CONFIG_HASH) != digest or not published:
            other = live_holder(self.state, but=self.owner)
            if other is not None and found.status == "running":  # its sessions' URLs go through it
                raise SkahaError(
                    f"the reuse home's gateway routes another profile set or gateway image, for a test run still "
                    f"going ({_run_of(other)}): let it end, or launch without reuse"
                )
            found.remove(force=True)
            return False
        self._gateway_ready(int(published[0]["HostPort"]))
        return True

    def close(self, keep: bool = False) -> None:
        """Let go of the run's kept sessions (their apps are deleted) and of the home; nothing else goes."""
        try:
            for session in list(self.sessions.values()):
                with suppress(Exception):
                    session.close()
            (self.state / HOLDERS / self.owner).unlink(missing_ok=True)
        finally:
            self._runtime.close()
            self._threads.shutdown(wait=False)

    # --- kept sessions --------------------------------------------------------------------------

    def launch(
        self, image: str, session_type: str, options: Launch = DEFAULT_LAUNCH, reuse: bool = True
    ) -> SkahaSession:
        plan, found = self._checked(image, session_type, options)
        if not plan.profile.interactive:
            raise SkahaError(f"reuse keeps interactive sessions; a {plan.type} runs to its end or with its desktop")
        wanted = reuse_slot(image, plan.type, options)
        made_of = reuse_key(str(found.id), plan.type, options, plan.profile, str(self.settings.layout.arc_path))
        with self._locked():
            adopted = self._adopt(wanted, made_of)
            if adopted is not None:
                self._hold(adopted.id)
                return adopted
            session = plan.session(naming.new_session_id(), self.user.name)
            self._record_path(session.id).write_text(_record_text(session))
            self._hold(session.id)
            kept = {labels.KIT_REUSE_SLOT: wanted, labels.KIT_REUSE_KEY: made_of}
            return self._start(plan.profile, session, options.timeout, kept)

    def _adopt(self, wanted: str, made_of: str) -> SkahaSession | None:
        """The oldest kept session of this slot made of the same that no test holds, if it still answers (a test
        holding one and asking again gets another, kept too); the slot's others no test holds are deleted."""
        selector = [f"{labels.KIT_REUSE}={self.state}", f"{labels.KIT_REUSE_SLOT}={wanted}"]
        found = self._client.containers.list(all=True, filters={"label": selector})
        adopted: SkahaSession | None = None
        for container in sorted(found, key=lambda container: str(container.attrs.get("Created", ""))):
            session_id = container.labels.get(labels.SESSION_ID, "")
            if self._held(session_id):
                continue  # a test of this run, or of another still going, holds it
            record = self._kept_record(session_id)
            if record is None or container.labels.get(labels.KIT_REUSE_KEY) != made_of:
                self._forget(container.name, session_id)
            elif adopted is None:
                adopted = self._take_over(container, record)
                if adopted is None:  # it no longer answers
                    self._forget(container.name, session_id)
        return adopted

    def _take_over(self, container: Any, session: Session) -> SkahaSession | None:
        """A handle on a kept session, when it runs and answers through the home's gateway (which a run may
        have made anew)."""
        profile = self.profiles.get(session.type)
        if profile is None or container.status != "running":
            return None
        handle = self._session_handle(profile, session, container, adopted=True)
        if profile.readiness is None:  # nothing to ask (as at its launch): running is all
            return handle
        probe = AnswersThroughGateway(handle.url, profile.readiness, OWN_ANSWER, ADOPTION_PROBE_SECONDS)
        try:
            probe.wait_until_ready(_Running(container))
        except (ExitedAtStart, NeverReady):
            self.sessions.pop(session.id, None)
            self._records.pop(session.id, None)
            return None
        return handle

    def _ending(self, name: str, session: Session, adopted: bool) -> dict[str, Any]:
        deleted = super()._ending(name, session, adopted)
        if session.parent_id is not None:  # a desktop-app goes with its test, on a kept desktop too
            return deleted
        kept = {"on_close": lambda closed: self._let_go(session), "reused": True, "adopted": adopted}
        return kept | {"on_discard": deleted["on_close"]}

    def _let_go(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self._records.pop(session.id, None)
        self._held_path(session.id).unlink(missing_ok=True)

    def _discard(self, container_name: str, session: Session) -> None:
        super()._discard(container_name, session)
        self._drop_record(session.id)

    def _forget(self, container_name: str, session_id: str) -> None:
        with suppress(docker.errors.NotFound):
            self._client.api.remove_container(container_name, force=True, v=True)
        if session_id:
            shutil.rmtree(self.settings.layout.session_files(session_id), ignore_errors=True)
            self._drop_record(session_id)

    def _hold(self, session_id: str) -> None:
        self._held_path(session_id).write_text(self.owner)

    def _held(self, session_id: str) -> bool:
        """Whether a test of a run still going holds the kept session (one of a run that crashed does not)."""
        try:
            return leftovers.alive(self._held_path(session_id).read_text())
        except OSError:
            return False

    def _drop_record(self, session_id: str) -> None:
        self._record_path(session_id).unlink(missing_ok=True)
        self._held_path(session_id).unlink(missing_ok=True)

    def _record_path(self, session_id: str) -> Path:
        return self.state / RECORDS / f"{session_id}.json"

    def _held_path(self, session_id: str) -> Path:
        return self.state / RECORDS / f"{session_id}{HELD}"

    def _kept_record(self, session_id: str) -> Session | None:
        try:
            return _record(self._record_path(session_id).read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return None


def live_holder(state: Path, but: str | None = None) -> str | None:
    """A test run still going that uses the home (but `but`), by its owner mark, if any."""
    holders = state / HOLDERS
    found = (holder.name for holder in holders.iterdir()) if holders.is_dir() else iter(())
    return next((holder for holder in found if holder != but and leftovers.alive(holder)), None)


def _run_of(mark: str) -> str:
    parts = mark.split(":")
    return f"pid {parts[2]}" if len(parts) == 4 else mark


def clean_home(client: docker.DockerClient) -> tuple[list[str], str | None]:
    """Remove your reuse home (its sessions, gateway, network and state; never its /arc) unless a run holds it:
    the names removed, and why it was left, if it was."""
    state = home_state()
    holder = live_holder(state)
    if holder is not None:
        return [], f"kept sessions left alone: a test run uses them ({_run_of(holder)})"
    selector = {"label": f"{labels.KIT_REUSE}={state}"}
    removed: list[str] = []
    for container in client.containers.list(all=True, filters=selector):
        with suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
        removed.append(container.name)
    for network in client.networks.list(filters=selector):
        with suppress(docker.errors.NotFound):
            network.remove()
        removed.append(network.name)
    layout = Layout(HOME, state)
    # What the home made in its state folder, by name: its /arc may be inside it (XDG_DATA_HOME = XDG_STATE_HOME).
    for folder in (
        state / RECORDS,
        state / HOLDERS,
        layout.sessions_dir,
        layout.skaha_system_dir,
        state / "configmaps",
    ):
        shutil.rmtree(folder, ignore_errors=True)
    for made in (state / "gateway.json", state / "lock"):
        made.unlink(missing_ok=True)
    return removed, None
