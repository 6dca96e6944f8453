"""/metrics' figures: Prometheus' text format as its own parser reads it, sessions counted from a real store at
each scrape, failures and pulls as the brain tells them, and request times labelled by route template only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from emulator.api.app import create_app
from emulator.api.metrics import Metrics, SessionsNow
from emulator.core.models import Session, Status
from emulator.core.observers import FailureCause, Observer, Observers
from emulator.core.pulls import ImagePulls
from emulator.core.store import Store
from emulator.runtime.base import ImageInfo, PullUpdate, RegistryCredentials
from emulator.session_types import SessionType
from emulator.settings import Settings
from tests.factories import NOW, make_session

FAMILIES = {
    "skaha_emulator_sessions",
    "skaha_emulator_queued_jobs",
    "skaha_emulator_launches",
    "skaha_emulator_session_failures",
    "skaha_emulator_pulled_bytes",
    "skaha_emulator_image_pulls",
    "skaha_emulator_signin_failures",
    "skaha_emulator_request_duration_seconds",
}


def _samples(metrics: Metrics) -> dict[str, list[Sample]]:
    return {f.name: f.samples for f in text_string_to_metric_families(metrics.text().decode())}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    (found,) = [s.value for s in samples if s.name == name and s.labels == labels]
    return found


def test_every_family_parses_and_counts_what_it_was_told(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", uncounted_types={SessionType.HEADLESS}, batch_types={SessionType.HEADLESS})
    store.admit(make_session(id="n1"), 10)
    store.admit(make_session(id="j1", type="headless"), 10)
    store.admit(make_session(id="j2", type="headless", queued_at=NOW), 10)
    store.admit(make_session(id="j3", type="headless", queued_at=NOW - timedelta(hours=1)), 10)
    store.mark_running("n1")
    metrics = Metrics()
    metrics.registry.register(SessionsNow(lambda: store.sessions(), store.queue_length))
    metrics.launched("notebook", "ok")
    metrics.launched("not-a-type-at-all", "refused")
    metrics.launched(None, "ok")  # skaha takes no type as headless
    metrics.signin_failed("wrong-password")
    metrics.session_failed(make_session(type="headless"), FailureCause.OOM)
    metrics.image_pulled(123_456)
    found = _samples(metrics)
    store.close()
    assert set(found) == FAMILIES
    sessions = found["skaha_emulator_sessions"]
    assert _value(sessions, "skaha_emulator_sessions", type="notebook", status="Running") == 1
    assert _value(sessions, "skaha_emulator_sessions", type="headless", status="Pending") == 3
    assert _value(sessions, "skaha_emulator_sessions", type="desktop", status="Failed") == 0  # every series, from 0
    assert _value(found["skaha_emulator_queued_jobs"], "skaha_emulator_queued_jobs") == 2
    launches = found["skaha_emulator_launches"]
    assert _value(launches, "skaha_emulator_launches_total", type="notebook", outcome="ok") == 1
    assert _value(launches, "skaha_emulator_launches_total", type="other", outcome="refused") == 1
    assert _value(launches, "skaha_emulator_launches_total", type="headless", outcome="ok") == 1
    failures = found["skaha_emulator_session_failures"]
    assert _value(failures, "skaha_emulator_session_failures_total", type="headless", reason="oom") == 1
    assert _value(found["skaha_emulator_pulled_bytes"], "skaha_emulator_pulled_bytes_total") == 123_456
    signins = found["skaha_emulator_signin_failures"]
    assert _value(signins, "skaha_emulator_signin_failures_total", reason="wrong-password") == 1
    assert _value(signins, "skaha_emulator_signin_failures_total", reason="throttled") == 0


def test_each_app_has_a_registry_of_its_own() -> None:
    first, second = Metrics(), Metrics()  # the global registry would refuse the second's names
    first.launched("notebook", "ok")
    assert (
        _value(
            _samples(second)["skaha_emulator_launches"], "skaha_emulator_launches_total", type="notebook", outcome="ok"
        )
        == 0
    )


def test_requests_are_timed_by_route_template_and_method_never_by_path() -> None:
    app = create_app(Settings(), "unused", "unused")
    client = TestClient(app)
    for path in ("/skaha/availability", "/skaha/v0/session/abc12345", "/skaha/v1/session/zzz99999", "/no/such/place/1"):
        client.get(path)
    client.request("BREW", "/skaha/availability")  # a method of nobody's: one label for them all
    samples = _samples(app.state.metrics)["skaha_emulator_request_duration_seconds"]
    counted = {(s.labels["route"], s.labels["method"]): s.value for s in samples if s.name.endswith("_count")}
    assert counted == {
        ("/skaha/availability", "GET"): 1,
        ("/skaha/{version}/session/{session_id}", "GET"): 2,
        ("unmatched", "GET"): 1,
        ("/skaha/availability", "other"): 1,
    }


class _Told(Observer):
    def __init__(self) -> None:
        self.failed: list[tuple[str, FailureCause]] = []
        self.pulled: list[int] = []

    def session_failed(self, session: Session, cause: FailureCause) -> None:
        self.failed.append((session.id, cause))

    def image_pulled(self, downloaded_bytes: int) -> None:
        self.pulled.append(downloaded_bytes)


class _Broken(Observer):
    def session_failed(self, session: Session, cause: FailureCause) -> None:
        raise RuntimeError("an observer's bug")


def test_one_observers_failure_never_keeps_the_others_from_being_told() -> None:
    observers, told = Observers(), _Told()
    observers.add(_Broken())
    observers.add(told)
    observers.session_failed(make_session(id="x1", status=Status.FAILED), FailureCause.EXITED)
    observers.session_expired(make_session())  # nobody overrides it: nothing happens
    assert told.failed == [("x1", FailureCause.EXITED)]


class _Registry:
    """An engine's pull, as the runtime reports it: two layers downloaded, one that was here already."""

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails

    async def pull(
        self, reference: str, credentials: RegistryCredentials | None, on_update: Callable[[PullUpdate], None]
    ) -> ImageInfo:
        on_update(PullUpdate("a", "Already exists"))
        for layer, size in (("b", 1000), ("c", 250)):
            on_update(PullUpdate(layer, "Downloading", size // 2, size))
            on_update(PullUpdate(layer, "Pull complete"))
        await asyncio.sleep(0)
        if self.fails:
            raise RuntimeError("the registry went away")
        return ImageInfo("sha256:1", [reference], {}, "sha256:1")


def test_a_finished_pull_tells_its_downloaded_bytes_once_however_many_waited() -> None:
    told = _Told()

    async def pulls(registry: _Registry) -> None:
        shared = ImagePulls(registry, told.image_pulled)  # type: ignore[arg-type]  # the engine's pull alone
        await asyncio.gather(*(shared.pull("img:1", None) for _ in range(3)), return_exceptions=True)
        await asyncio.sleep(0)  # the done callback runs

    asyncio.run(pulls(_Registry()))
    asyncio.run(pulls(_Registry(fails=True)))  # a failed pull finished nothing
    assert told.pulled == [1250]
