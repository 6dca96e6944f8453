"""One set of launch rules: the test kit's standalone mode refuses exactly what the platform refuses, in the
platform's words, and plans what it takes as the platform does.

Both sides run for real, without an engine: the kit (made with a Docker client that never connects, which its
planning never uses) and a SessionManager over the kit's own settings, profiles and /context, with a store of
its own and an engine that only answers "this image is here". Each launch goes to the kit as a test asks for
it and to the manager as POST /session hands it over when the attached kit sends the same launch.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import psutil
import pytest

from emulator.core import policy
from emulator.core.addresses import SessionAddresses
from emulator.core.bringup import SessionServices
from emulator.core.callback import CallbackTokens
from emulator.core.identity import UsersSource
from emulator.core.models import GIB, Fault, FaultKind, HostCapacity, HostFacts, LaunchRequest, Session
from emulator.core.networks import UserNetworks
from emulator.core.probe import GatewayProbes
from emulator.core.sessions import SessionManager
from emulator.core.store import Store
from emulator.core.usage import UsageSampler
from emulator.errors import EmulatorError, InvalidRequest
from emulator.runtime.base import ImageInfo
from emulator.testkit import leftovers
from emulator.testkit.options import Launch
from emulator.testkit.session import SkahaError
from emulator.testkit.standalone import NO_FAULTS, StandaloneKit

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOTEBOOK = "skaha-emulator/notebook:latest"
WITHOUT_PROFILE = "firefly"  # both sides lose this type's profile: "a type without a profile"


class LocalImages:
    """The engine, as far as a launch asks it before admission: every image is here, labelled for no type."""

    async def image(self, reference: str) -> ImageInfo:
        return ImageInfo(id=f"sha256:{reference.encode().hex()[:64]}", tags=[reference], labels={}, digest="")


@dataclass
class Pair:
    kit: StandaloneKit
    manager: SessionManager
    store: Store

    def platform_launch(self, request: LaunchRequest) -> Session | EmulatorError:
        """The manager's answer to the launch: the session it admitted, or its refusal."""

        async def launch() -> str:
            try:
                return await self.manager.launch(self.kit.user, request)
            finally:
                await self.manager.stop()  # the bring-up never starts: there is no engine

        try:
            session_id = asyncio.run(launch())
        except EmulatorError as refused:
            return refused
        stored = self.store.get(session_id)
        assert stored is not None
        return stored


def _manager(kit: StandaloneKit, store: Store, root: Path, **host: Any) -> SessionManager:
    runtime: Any = LocalImages()
    capacity = HostCapacity(psutil.cpu_count() or 1, psutil.virtual_memory().total / GIB)
    services = SessionServices(
        callbacks=CallbackTokens(root / "callback.key"),
        usage=UsageSampler(runtime, lambda session: session.id),
        networks=UserNetworks(runtime, kit.settings),
        probes=GatewayProbes("http://gateway.invalid", "", lambda session_id: {}),
        addresses=SessionAddresses(store, runtime, kit.settings.prefix),
    )
    facts = HostFacts(host.pop("context", kit.context), capacity, **host)
    return SessionManager(
        kit.settings,
        store,
        runtime,
        kit.profiles,
        UsersSource(root / "users.yaml"),
        facts,
        services,
        clock=lambda: NOW,
    )


@contextmanager
def _pair(root: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], **manager: Any) -> Iterator[Pair]:
    """A kit and a manager that share settings (EMULATE_* `settings` over the defaults), profiles and /context."""
    for name in [name for name in os.environ if name.startswith("EMULATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("EMULATE_MIN_FREE_GB", "0")  # this machine's free disk is no launch rule
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    offline = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    kit = StandaloneKit(root / "arc", profiles_dir=REPO_ROOT / "profiles", client=offline)
    try:
        del kit.profiles[WITHOUT_PROFILE]
        profiles = kit.profiles.values()
        store = Store(
            root / "state.db",
            uncounted_types={p.type for p in profiles if not p.counts_toward_limit},
            batch_types={p.type for p in profiles if p.batch},
        )
        try:
            yield Pair(kit, _manager(kit, store, root, **manager), store)
        finally:
            store.close()
    finally:
        kit.close(keep=True)  # nothing in the engine to remove; then its state folder goes
        leftovers.remove_state(str(kit.state))


def _as_the_api_receives(image: str, session_type: str, options: Launch) -> LaunchRequest:
    """The launch the attached kit sends (EmulatorClient.launch: every parameter given, as text), as POST /session
    hands it to the manager."""
    return LaunchRequest(
        name=options.name,
        image=image,
        type=session_type,
        cores=None if options.cores is None else str(options.cores),
        ram=None if options.ram is None else str(options.ram),
        cmd=options.cmd,
        args=options.args_line,
        env=options.env_entries,
    )


def _launched_as(session: Session) -> tuple[Any, ...]:
    """What a launch decides of its session (its id, owner and start time aside)."""
    lifetime = session.expiry_time - session.start_time
    return (session.name, session.image, session.type, session.resources, session.env, session.cmd, session.args,
            session.gpu_devices, session.status, lifetime)  # fmt: skip


def _case(
    image: str, session_type: str, refusal: str | None, settings: dict[str, str] | None = None, **options: Any
) -> Any:
    """A launch (the kit's `Launch` options), and the platform's refusal of it in its words (None: it takes it)."""
    return pytest.param(
        image,
        session_type,
        Launch(**options),
        refusal,
        settings or {},
        id=f"{session_type}: {(refusal or 'taken')[:40]}",
    )


BAD_IMAGE = "session image '{}' is not a valid image reference ([registry[:port]/]name[:tag][@digest]): {}"
UPPER_REFUSED = BAD_IMAGE.format("UPPER:1", "it is not of that form: repository name (library/UPPER) must be lowercase")
CASES = [
    # the name
    _case(NOTEBOOK, "notebook", "name must have a value", name=""),
    _case(NOTEBOOK, "notebook", "name can only contain alpha-numeric chars and '-'", name="my_session"),
    _case(NOTEBOOK, "notebook", "name must be at most 63 characters (it becomes the hostname)", name="x" * 64),
    _case(
        NOTEBOOK,
        "notebook",
        "name must not start with 'emulate-': the platform's own containers are named so",
        name="emulate-gateway",
    ),
    # the image
    _case("", "notebook", "Missing parameter 'image'"),
    _case(
        "UPPER:1",
        "notebook",
        UPPER_REFUSED,
    ),
    _case("a b", "notebook", BAD_IMAGE.format("a b", "it has characters an image reference cannot have")),
    # the type: unknown, without a profile, attached to another
    _case(NOTEBOOK, "jupyter", "Invalid session type: jupyter"),
    _case(
        NOTEBOOK,
        WITHOUT_PROFILE,
        f"session type '{WITHOUT_PROFILE}' is not available in this emulator yet (no profiles/{WITHOUT_PROFILE}.yaml)",
    ),
    _case(NOTEBOOK, "desktop-app", "a desktop-app is attached to a desktop: POST /session/<desktop id>/app"),
    # resources: out of /context's range, or not a number (a fixed type's too: skaha checks them first)
    _case(NOTEBOOK, "notebook", "Invalid value for 'cores': 17", cores=17),
    _case(NOTEBOOK, "notebook", "Invalid value for 'cores': 0", cores=0),
    _case(NOTEBOOK, "notebook", "Invalid value for 'cores': two", cores="two"),
    _case(NOTEBOOK, "notebook", "Invalid value for 'cores': 1.5", cores="1.5"),
    _case(NOTEBOOK, "notebook", "Invalid value for 'ram': 3", ram=3),
    _case(NOTEBOOK, "headless", "Invalid value for 'ram': 1000", ram=1000),
    _case(NOTEBOOK, "desktop", "Invalid value for 'cores': 17", cores=17),
    # several wrongs: the first in skaha's order wins on both sides
    _case(
        "UPPER:1",
        "jupyter",
        UPPER_REFUSED,
        name="a_b",
    ),
    _case(NOTEBOOK, "jupyter", "name can only contain alpha-numeric chars and '-'", name="a_b"),
    _case(NOTEBOOK, "desktop-app", "name must have a value", name=""),
    _case(NOTEBOOK, "jupyter", "Invalid session type: jupyter", cores=17),
    _case(
        NOTEBOOK,
        WITHOUT_PROFILE,
        f"session type '{WITHOUT_PROFILE}' is not available in this emulator yet (no profiles/{WITHOUT_PROFILE}.yaml)",
        ram=3,
    ),
    # the session limit: interactive sessions count, jobs do not
    _case(
        NOTEBOOK,
        "notebook",
        "User {user} has reached the maximum of 0 active sessions.",
        {"EMULATE_MAX_SESSIONS": "0"},
    ),
    _case(NOTEBOOK, "headless", None, {"EMULATE_MAX_SESSIONS": "0"}),
    # taken, and planned alike: names lowercased, env kept as skaha keeps it (an entry with two '=' goes),
    # fixed and flexible resources, fixed types, lifetimes of sessions and jobs
    _case(NOTEBOOK, "notebook", None, name="MyNotebook"),
    _case(NOTEBOOK, "notebook", None, cores=1, ram=1),
    _case(NOTEBOOK, "notebook", None, ram=1),
    _case(NOTEBOOK, "desktop", None, cores=1, ram=1),
    _case(NOTEBOOK, "headless", None, env={"A": "1", "B": "x=y"}, cmd="/bin/sh", args=["-c", "exit${IFS}3"]),
    _case(NOTEBOOK, "contributed", None, {"EMULATE_SESSION_EXPIRY_SECONDS": "600"}),
]


@pytest.mark.parametrize("image, session_type, options, refusal, settings", CASES)
def test_the_kit_refuses_what_the_platform_refuses_and_plans_what_it_takes_alike(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    image: str,
    session_type: str,
    options: Launch,
    refusal: str | None,
    settings: dict[str, str],
) -> None:
    with _pair(tmp_path, monkeypatch, settings) as pair:
        platform = pair.platform_launch(_as_the_api_receives(image, session_type, options))
        try:
            plan = pair.kit.plan(image, session_type, options)
        except InvalidRequest as refused:
            assert isinstance(platform, EmulatorError), f"the kit refuses what the platform takes: {refused}"
            assert (type(refused), refused.message) == (type(platform), platform.message)
            assert refusal is not None and refused.message == refusal.format(user=pair.kit.user.name)
            with pytest.raises(SkahaError) as launching:  # and a test that launches it is told so, in those words
                pair.kit.launch(image, session_type, options)
            assert str(launching.value) == refused.message
            return
        assert isinstance(platform, Session), f"the platform refuses what the kit takes: {platform}"
        assert refusal is None
        assert _launched_as(plan.session(platform.id, platform.user)) == _launched_as(platform)


def test_the_kit_cannot_ask_for_gpus() -> None:
    """So it cannot be laxer than the platform there; the platform's GPU rules are checked below."""
    assert "gpus" not in {f.name for f in fields(Launch)}, "Launch asks for GPUs now: add GPU cases to CASES"


@pytest.mark.parametrize(
    "devices, gpus, refusal",
    [
        ([], "1", "Invalid value for 'gpus': 1 (no GPU here, for the test)"),
        ([], "two", "Invalid value for 'gpus': two (no GPU here, for the test)"),
        (["GPU-a"], "2", "Invalid value for 'gpus': 2"),
        (["GPU-a"], "1", None),
        (["GPU-a"], "0", None),
    ],
)
def test_the_platform_gives_gpus_it_has_and_refuses_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, devices: list[str], gpus: str, refusal: str | None
) -> None:
    context = policy.resource_context(4, 64, len(devices))
    with _pair(
        tmp_path, monkeypatch, {}, context=context, gpu_devices=devices, gpu_note="no GPU here, for the test"
    ) as pair:
        request = LaunchRequest(name="gpu", image=NOTEBOOK, type="notebook", gpus=gpus)
        first = pair.platform_launch(request)
        if refusal is not None:
            assert isinstance(first, InvalidRequest) and first.message == refusal
            return
        assert isinstance(first, Session), first
        wanted = int(gpus)
        assert (first.resources.gpus, first.gpu_devices) == (wanted, devices[:wanted])
        if wanted:  # a session never shares a GPU
            second = pair.platform_launch(request)
            assert isinstance(second, InvalidRequest)
            assert second.message == "Invalid value for 'gpus': 1 (only 0 GPU(s) free on this machine)"


def test_the_kit_refuses_an_env_entry_the_platform_would_silently_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = Launch(env={"A": "1", "URL": "http://x/?a=b"}, cmd="/bin/true")
    with _pair(tmp_path, monkeypatch, {}) as pair:
        platform = pair.platform_launch(_as_the_api_receives(NOTEBOOK, "headless", options))
        assert isinstance(platform, Session) and platform.env == ["A=1"]  # taken, and run without URL
        with pytest.raises(SkahaError, match=r"CANFAR drops an env entry whose value holds '=' \(URL\)"):
            pair.kit.launch(NOTEBOOK, "headless", options)


# Faults on request: the platform's alone. The kit's `Launch` has no fault parameter, and an env entry asking for
# one (what a test could send) is refused by the kit in its own words, as the platform refuses it where faults are
# off: the kit emulates none, whatever EMULATE_FAULTS says.
FAULT_ENV = {"EMULATE_FAULT": "oom:30", "A": "1"}


def test_the_kit_has_no_fault_parameter() -> None:
    assert "fault" not in {f.name for f in fields(Launch)}, "Launch asks for faults now: the kit must emulate them"


@pytest.mark.parametrize("on", [False, True])
def test_a_fault_is_the_platforms_only_where_it_runs_with_faults_on_and_never_the_kits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on: bool
) -> None:
    options = Launch(env=FAULT_ENV, cmd="sleep", args=["60"])
    with _pair(tmp_path, monkeypatch, {"EMULATE_FAULTS": "true"} if on else {}) as pair:
        platform = pair.platform_launch(_as_the_api_receives(NOTEBOOK, "headless", options))
        if on:  # taken: kept with the session, out of its environment
            assert isinstance(platform, Session), platform
            assert (platform.fault, platform.env) == (Fault(FaultKind.OOM, 30), ["A=1"])
        else:
            assert isinstance(platform, InvalidRequest)
            assert platform.message == f"EMULATE_FAULT=oom:30 refused: {policy.FAULTS_OFF}"
        with pytest.raises(InvalidRequest) as refused:
            pair.kit.plan(NOTEBOOK, "headless", options)
        assert refused.value.message == f"EMULATE_FAULT=oom:30 refused: {NO_FAULTS}"
        with pytest.raises(SkahaError, match="standalone mode emulates no faults"):
            pair.kit.launch(NOTEBOOK, "headless", options)


def test_the_platform_takes_the_fault_parameter_and_holds_a_pending_session_unscheduled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _pair(tmp_path, monkeypatch, {"EMULATE_FAULTS": "true"}) as pair:
        request = LaunchRequest(name="held", image=NOTEBOOK, type="notebook", fault="pending")
        held = pair.platform_launch(request)
        assert isinstance(held, Session) and held.fault == Fault(FaultKind.PENDING)
        (event,) = pair.store.events(held.id)  # the scheduler's word instead of Scheduled
        assert (event.type, event.reason) == ("Warning", "FailedScheduling")
        refused = pair.platform_launch(LaunchRequest(name="bad", image=NOTEBOOK, type="notebook", fault="oom"))
        assert isinstance(refused, InvalidRequest) and refused.message.startswith("Invalid value for 'fault': oom (")
