"""/metrics: the platform's figures in Prometheus' text format, for whoever watches the server (an admin's
token only): sessions by type and status and the queued jobs (read from the store as it is scraped), launches
by type and outcome, failed sessions by cause, the bytes image pulls downloaded, failed sign-ins, and how long
the API took to answer, by route template and method.

Each app has a registry of its own (never prometheus_client's global one), and every label takes a value
from a short closed list (a route's template, never its path; a session type, never what a caller typed), so
no scraper's series grow with the traffic.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator.api.deps import AdminUser
from emulator.core.models import Session, Status
from emulator.core.observers import FailureCause, Observer
from emulator.core.sessions import SessionManager
from emulator.errors import EmulatorError
from emulator.session_types import SESSION_TYPES

# No `_created` series beside each counter: a text parser reads them as families of their own, and a restart
# of the service is plain from the counters falling to zero.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

PREFIX = "skaha_emulator"
LaunchOutcome = Literal["ok", "refused", "failed"]  # failed: the platform's own trouble (a 5xx)
SigninFailure = Literal["wrong-password", "throttled"]
OTHER = "other"  # a label value for anything outside its list (a type nobody has, an unheard-of method)
UNMATCHED = "unmatched"  # the route of a request no route took (a 404)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _type_label(asked: str | None) -> str:
    """A launch's type as a label: one of skaha's types (none given is headless, as skaha takes it), else other."""
    wanted = asked or "headless"
    return wanted if wanted in SESSION_TYPES else OTHER


class SessionsNow:
    """The sessions and desktop-apps by type and status, and the batch jobs waiting in the queue, read from
    the store at each scrape (a collector: nothing to keep up to date between scrapes)."""

    def __init__(self, read: Callable[[], Iterable[Session]], queued: Callable[[], int]) -> None:
        self._read = read
        self._queued = queued

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        sessions = GaugeMetricFamily(
            f"{PREFIX}_sessions",
            "Sessions and desktop-apps on the platform now, by type and status",
            labels=["type", "status"],
        )
        queued = GaugeMetricFamily(
            f"{PREFIX}_queued_jobs", "Batch jobs waiting in the queue for cores and memory to free"
        )
        return sessions, queued

    def describe(self) -> Iterable[Metric]:
        """Its families' names, without reading the store (the registry checks them against the others')."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        found = list(self._read())
        counts = Tally((str(s.type), s.status.value) for s in found)
        sessions, queued = self._families()
        for session_type in sorted({*SESSION_TYPES, *(t for t, _ in counts)}):
            for status in Status:
                sessions.add_metric([session_type, status.value], counts.get((session_type, status.value), 0))
        queued.add_metric([], self._queued())
        return sessions, queued


class Metrics(Observer):
    """The service's figures; told of failures and pulls by the brain (an Observer), of launches, sign-ins
    and requests by the faces."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._launches = Counter(
            f"{PREFIX}_launches", "Launches asked for, by type and outcome", ["type", "outcome"], registry=self.registry
        )
        self._failures = Counter(
            f"{PREFIX}_session_failures",
            "Sessions that failed, by type and cause",
            ["type", "reason"],
            registry=self.registry,
        )
        self._pulled = Counter(
            f"{PREFIX}_pulled_bytes", "Bytes that finished image pulls downloaded", registry=self.registry
        )
        self._pulls = Counter(f"{PREFIX}_image_pulls", "Image pulls that finished", registry=self.registry)
        self._signin_failures = Counter(
            f"{PREFIX}_signin_failures", "Portal sign-ins refused, by reason", ["reason"], registry=self.registry
        )
        self._latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time the service took to answer, by route template and method",
            ["route", "method"],
            registry=self.registry,
        )
        for session_type in SESSION_TYPES:  # every series there from the start, at 0: rates work from the first
            for outcome in ("ok", "refused", "failed"):
                self._launches.labels(session_type, outcome)
            for cause in FailureCause:
                self._failures.labels(session_type, cause.value)
        for reason in ("wrong-password", "throttled"):
            self._signin_failures.labels(reason)

    def follow(self, manager: SessionManager) -> None:
        """Read the sessions from this manager's store at each scrape."""
        self.registry.register(SessionsNow(lambda: manager.sessions(None), manager.queue_length))

    def launched(self, asked_type: str | None, outcome: LaunchOutcome) -> None:
        self._launches.labels(_type_label(asked_type), outcome).inc()

    def signin_failed(self, reason: SigninFailure) -> None:
        self._signin_failures.labels(reason).inc()

    def answered(self, route: str, method: str, seconds: float) -> None:
        self._latency.labels(route, method if method in METHODS else OTHER).observe(seconds)

    def session_failed(self, session: Session, cause: FailureCause) -> None:
        self._failures.labels(_type_label(str(session.type)), cause.value).inc()

    def image_pulled(self, downloaded_bytes: int) -> None:
        self._pulls.inc()
        self._pulled.inc(downloaded_bytes)

    def text(self) -> bytes:
        return generate_latest(self.registry)


def route_template(scope: Scope) -> str:
    """The template of the route that took the request (`/skaha/{version}/session/{session_id}`), never its
    path: a path holds ids, and a label per id would grow without end."""
    route = scope.get("route")
    if isinstance(route, Route | Mount):
        return route.path
    return UNMATCHED


class RequestTimer:
    """Times every HTTP request the service answers, labelled by its route's template and its method."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:  # the router wrote the route it chose into this scope
            self._metrics.answered(route_template(scope), scope["method"], time.perf_counter() - started)


def metrics_of(request: Request) -> Metrics:
    """The app's metrics (made with the app, in app.py)."""
    return request.app.state.metrics  # type: ignore[no-any-return]  # Starlette's app.state is untyped


@contextmanager
def launch_counted(request: Request, asked_type: str | None) -> Iterator[None]:
    """The launch the block runs, counted by its outcome: ok, refused (the caller's request, a 4xx) or failed
    (the platform's own trouble, a 5xx)."""
    counted = metrics_of(request).launched
    try:
        yield
    except EmulatorError as exc:
        counted(asked_type, "refused" if exc.status_code < 500 else "failed")
        raise
    counted(asked_type, "ok")


router = APIRouter()


@router.get("/metrics", summary="The platform's figures in Prometheus' text format (an admin's token only)")
async def metrics(request: Request, admin: AdminUser) -> Response:
    return Response(metrics_of(request).text(), media_type=CONTENT_TYPE_LATEST)
