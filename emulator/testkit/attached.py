"""Attached mode: sessions launched through a running platform's API (`--skaha-url`), as `canfar` or the
portal would launch them; the platform applies the contract. Commands, logs and /arc are read from the
session's container, so the platform must run on this machine's Docker engine.

A session kept for reuse stays on the platform, named `<name>-kitreuse-<slot>-<key>` (8 characters of each of
options.reuse_slot and reuse_key): the next run adopts the one of its slot whose key is the same and deletes the
others.
`emulate ps` lists them, `emulate delete` or `emulate testkit clean` removes them, and they expire as any
session does."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import docker
import docker.errors

from emulator import labels
from emulator.client.http import EmulatorClient
from emulator.core.policy import MAX_NAME_LENGTH
from emulator.errors import EmulatorError
from emulator.layout import Layout
from emulator.profiles import Profile, load_profiles
from emulator.runtime.endpoint import client_from_environment
from emulator.settings import load_settings
from emulator.testkit import leftovers
from emulator.testkit.images import KitImages
from emulator.testkit.options import DEFAULT_LAUNCH, Launch, reuse_key, reuse_slot
from emulator.testkit.session import ContractBroken, SkahaError, SkahaSession, check_args, refuse_what_canfar_ignores

POLL = 0.1
APP_START_SECONDS = 120
KEPT_MARK = "-kitreuse-"
KEPT_NAME = re.compile(rf".+{KEPT_MARK}[0-9a-f]{{8}}-[0-9a-f]{{8}}$")


def kept_name(name: str, slot: str, key: str) -> str:
    """The platform's name of a kept session: the test's name, then its slot's and its key's first 8 characters."""
    return f"{name.lower()}{KEPT_MARK}{slot[:8]}-{key[:8]}"


class AttachedKit:
    def __init__(self, url: str, token: str | None, client: docker.DockerClient | None = None) -> None:
        self._api = EmulatorClient(Layout.from_environment(), url=url, token=token)
        self._docker = client or client_from_environment()
        self.base_url = self._api.base_url
        settings = load_settings()
        self.profiles: dict[str, Profile] = load_profiles(settings.profiles_dir)
        self.images = KitImages(settings, self._docker, {labels.KIT_OWNER: leftovers.owner()})
        self.sessions: dict[str, SkahaSession] = {}

    def start(self) -> AttachedKit:
        try:
            self._api.context()  # it answers, and takes the token
        except EmulatorError as exc:
            raise SkahaError(f"the platform at {self.base_url} cannot be used: {exc.message}") from None
        return self

    def close(self, keep: bool = False) -> None:
        if not keep:
            for session in list(self.sessions.values()):
                with contextlib.suppress(Exception):  # one that fails must not keep the others
                    session.close()

    def launch(
        self, image: str, session_type: str, options: Launch = DEFAULT_LAUNCH, reuse: bool = False
    ) -> SkahaSession:
        profile = self.profiles.get(session_type)
        if profile is not None:  # the kit's own refusals, as standalone; an unknown type is the platform's to refuse
            refuse_what_canfar_ignores(profile, options)
        else:
            check_args(options.args)
        name = self._kept_name(image, session_type, options, profile) if reuse else options.name
        if reuse and (kept := self._adopt(name, image, session_type)) is not None:
            return kept
        try:
            session_id = self._api.launch(
                name=name,
                image=image,
                type=session_type,
                cores=options.cores,
                ram=options.ram,
                env=options.env_entries,
                cmd=options.cmd,
                args=options.args_line,
            )
        except EmulatorError as exc:
            raise SkahaError(f"the platform refused the launch: {exc.message}") from None
        default = float(profile.startup_timeout_seconds if profile else 300) * 2
        limit = options.timeout if options.timeout is not None else default
        try:
            found = self._wait(session_id, session_type, image, limit, batch=bool(profile and profile.batch))
            return self._handle(session_id, session_type, image, found, reused=reuse)
        except BaseException:
            self._delete(session_id)
            raise

    def _kept_name(self, image: str, session_type: str, options: Launch, profile: Profile | None) -> str:
        if profile is not None and not profile.interactive:
            raise SkahaError(f"reuse keeps interactive sessions; a {session_type} runs to its end or with its desktop")
        try:
            made_of = str(self._docker.images.get(image).id)
        except docker.errors.ImageNotFound:  # the platform pulls it: known by its name alone
            made_of = image
        name = kept_name(
            options.name,
            reuse_slot(image, session_type, options),
            reuse_key(made_of, session_type, options, profile, self.base_url),
        )
        if len(name) > MAX_NAME_LENGTH:
            raise SkahaError(
                f"a kept session's name is yours with {len(name) - len(options.name)} characters added; "
                f"{options.name!r} is too long for that (at most {MAX_NAME_LENGTH} in all)"
            )
        return name

    def _adopt(self, name: str, image: str, session_type: str) -> SkahaSession | None:
        """The oldest running session of this name that no test of this run holds; those kept for the same slot
        under another key (another image, other options) or ended are deleted. Others of this very name (a test
        that held one asked again) stay kept."""
        adopted: SkahaSession | None = None
        slot_prefix = name[: -len("-12345678")]
        for found in sorted(self._api.sessions(), key=lambda found: str(found.get("startTime", ""))):
            if not str(found.get("name", "")).startswith(slot_prefix) or found.get("type") != session_type:
                continue
            if found["id"] in self.sessions:
                continue  # a test of this run holds it
            if found["name"] != name or found.get("status") not in ("Pending", "Running"):
                self._delete(found["id"])
            elif adopted is None and found.get("status") == "Running":
                adopted = self._handle(found["id"], session_type, image, found, reused=True, adopted=True)
        return adopted

    def _wait(self, session_id: str, session_type: str, image: str, limit: float, batch: bool) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        found: dict[str, Any] = {}
        while time.monotonic() < deadline:
            found = self._api.session(session_id)
            if found["status"] != "Pending":
                break
            time.sleep(POLL)
        # An interactive session must be Running; a job may have run to its end already, either way.
        wanted = ("Running", "Succeeded", "Failed", "Completed") if batch else ("Running",)
        if found.get("status") not in wanted:
            events = self._api.events(session_id)
            raise ContractBroken(
                f"{image} did not start as a {session_type} session on {self.base_url} "
                f"(status {found.get('status', 'unknown')}). Its events:\n{events.rstrip()}"
            )
        return found

    def _handle(
        self,
        session_id: str,
        session_type: str,
        image: str,
        found: dict[str, Any],
        reused: bool = False,
        adopted: bool = False,
    ) -> SkahaSession:
        container = self._container(labels.ROW_ID, session_id)
        profile = self.profiles.get(session_type)
        prefix = profile.path_prefix.replace("{session_id}", session_id) if profile and profile.path_prefix else None
        connect = found.get("connectURL")
        handle = SkahaSession(
            session_id=session_id,
            session_type=session_type,
            image=image,
            container=container,
            url=f"{self.base_url}{prefix}" if prefix else None,
            connect_url=connect if connect and connect != "not-applicable" else None,
            http_params={"token": session_id} if session_type == "notebook" else None,
            http_headers=self._api.auth_headers,  # a platform with sign-in checks every session request
            verify=self._api.verify,
            on_close=lambda closed: self._let_go(session_id) if reused else self._delete(session_id),
            on_discard=lambda closed: self._delete(session_id),
            on_desktop_app=self._attach if profile is not None and profile.x11 == "server" else None,
            log_rules=lambda: self.images.log_rules(image),
            reused=reused,
            adopted=adopted,
        )
        self.sessions[session_id] = handle
        return handle

    def _container(self, key: str, value: str) -> Any:
        found = self._docker.containers.list(all=True, filters={"label": f"{key}={value}"})
        if not found:
            raise SkahaError(
                f"session {value} runs on another Docker engine than this one: attached mode needs the "
                "platform on this machine"
            )
        return found[0]

    def _attach(self, desktop: SkahaSession, image: str) -> SkahaSession:
        try:
            app_id = self._api.attach_app(desktop.id, image)
        except EmulatorError as exc:
            raise SkahaError(f"the platform refused the desktop-app: {exc.message}") from None
        try:
            deadline = time.monotonic() + APP_START_SECONDS
            status = "Pending"
            while time.monotonic() < deadline:
                status = self._api.app(desktop.id, app_id)["status"]
                if status != "Pending":
                    break
                time.sleep(POLL)
            if status != "Running":
                raise ContractBroken(
                    f"the desktop-app {image} did not start on desktop {desktop.id} (status {status}); "
                    f"see `emulate logs {desktop.id}` (a desktop's logs include its apps')"
                )
            container = self._container(labels.ROW_ID, f"{desktop.id}-{app_id}")
        except BaseException:
            self._delete_app(desktop.id, app_id)
            raise
        return SkahaSession(
            session_id=app_id,
            session_type="desktop-app",
            image=image,
            container=container,
            url=None,
            connect_url=None,
            on_close=lambda closed: self._delete_app(desktop.id, app_id),
        )

    def _delete_app(self, desktop_id: str, app_id: str) -> None:
        with contextlib.suppress(EmulatorError):  # gone already, or with its desktop
            self._api.delete_app(desktop_id, app_id)

    def _let_go(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)

    def _delete(self, session_id: str) -> None:
        with contextlib.suppress(EmulatorError):  # gone already
            self._api.delete(session_id)
        self.sessions.pop(session_id, None)
