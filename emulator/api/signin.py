"""A sign-in by name and password (or the user's API token as the password), as every face takes it (the portal's
form, the access service's /ac/login): the throttle's back-off first, the check off the event loop, and the audit
line and metric of how it went."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from emulator.api.access import client_address
from emulator.api.audit import audit
from emulator.api.metrics import metrics_of
from emulator.api.pages import auth_of
from emulator.core.models import User

UNKNOWN_USER = "(unknown user)"  # a failed sign-in's line, for a name no user has


@dataclass(frozen=True)
class Attempt:
    """How a sign-in went: the user, or none; `retry_after` > 0 when it was not even checked (throttled)."""

    user: User | None
    retry_after: int = 0

    @property
    def throttle_message(self) -> str:
        return f"Too many wrong passwords for this name or from this address: try again in {self.retry_after} s."


async def sign_in(request: Request, username: str, password: str) -> Attempt:
    auth = auth_of(request)
    name, address = username.strip(), client_address(request)
    wait = auth.throttle.wait(name, address)
    if wait > 0:
        _failed(request, name, "throttled")
        return Attempt(None, math.ceil(wait))
    # scrypt takes tens of milliseconds: off the event loop, so sign-ins never hold up other requests.
    user = await run_in_threadpool(auth.sign_in, name, password) if name and password else None
    if user is None:
        auth.throttle.failed(name, address)  # an empty form too: it costs nothing, so only the throttle bounds it
        _failed(request, name, "failed")
        return Attempt(None)
    auth.throttle.succeeded(name)
    audit(request, "sign-in", user.name)
    return Attempt(user)


def _failed(request: Request, name: str, outcome: Literal["failed", "throttled"]) -> None:
    """A refused sign-in, counted in the metrics each time. Its audit line names the user it was tried as only
    when there is a user of that name (what was typed in the name field may be a password typed in the wrong
    box), and, while that name and address wait out the throttle, one line a window stands for every attempt
    (throttle.FailureLines): a flood of attempts that cost nothing never pushes the earlier lines out of the log."""
    metrics_of(request).signin_failed("throttled" if outcome == "throttled" else "wrong-password")
    auth = auth_of(request)
    tried = name if auth.user_named(name) is not None else UNKNOWN_USER
    lines, address = auth.throttle.lines, client_address(request)
    count = lines.throttled(tried, address) if outcome == "throttled" else lines.failed(tried, address)
    if count:
        audit(request, "sign-in-failed", None, outcome, user=tried, count=count)
