"""Back-off for password guessing at the portal's sign-in: per user name and per client address.

Up to `limit - 1` wrong passwords in `window` seconds are answered as usual; from the `limit`-th on, a
sign-in for that name, or from that address, is not even checked until the oldest failure leaves the
window, and the answer says how long to wait. A wait, not a lock-out: someone hammering a name can delay
its owner by a minute at most, never shut them out. The per-address count matters only where the gateway
sees the real client (behind Docker's userland proxy, every client may share one address, which the
per-name count still covers).

`FailureLines` says which refused sign-ins get a line in the audit log: a throttled attempt costs the service
nothing, so while one waits, a line a window stands for them all.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

LIMIT = 30  # wrong passwords a minute before the next sign-in waits
WINDOW_SECONDS = 60.0
MAX_TRACKED = 10_000  # keys kept; a flood of made-up names forgets its oldest, never exhausts the memory


class SignInThrottle:
    def __init__(
        self,
        limit: int = LIMIT,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._max_tracked = max_tracked
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.lines = FailureLines(window, clock, max_tracked)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def wait(self, name: str, address: str | None) -> float:
        """Seconds before a sign-in for `name` from `address` is checked again; 0: check it now."""
        now = self._clock()
        longest = 0.0
        for key in _keys(name, address):
            failures = self._recent(key, now)
            if len(failures) >= self._limit - 1:
                # The oldest failure that keeps the count at the limit must leave the window first.
                oldest = failures[len(failures) - (self._limit - 1)]
                longest = max(longest, oldest + self._window - now)
        return longest

    def failed(self, name: str, address: str | None) -> None:
        now = self._clock()
        for key in _keys(name, address):
            failures = self._failures.pop(key, None) or deque()
            failures.append(now)
            while len(failures) > self._limit:
                failures.popleft()
            self._failures[key] = failures  # most recently failed last: the oldest are forgotten first
        while len(self._failures) > self._max_tracked:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        """The owner got in: their name's count starts again (the address's stays: it may be a guesser's)."""
        self._failures.pop(_name_key(name), None)


def _name_key(name: str) -> str:
    return f"name:{name.lower()}"


def _keys(name: str, address: str | None) -> list[str]:
    return [_name_key(name)] + ([f"address:{address}"] if address else [])


Pair = tuple[str, str | None]  # the name a line names, and the address


class FailureLines:
    """Which refused sign-ins get an audit line, per (name, address). Each failure the throttle let through is
    written (the throttle bounds those: under `limit` a window from one address). While the pair waits out the
    throttle, its attempts cost nothing, so its first throttled attempt is written, then at most one a window;
    each line counts the attempts it stands for, itself and those written nowhere since the pair's last line.
    A flood of sign-ins so never pushes the log's earlier lines out of its rotated files."""

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self._window = window
        self._clock = clock
        self._max_tracked = max_tracked
        self._pairs: OrderedDict[Pair, tuple[float | None, int]] = OrderedDict()  # last throttled line, unwritten

    def throttled(self, name: str, address: str | None) -> int:
        """A throttled attempt: the attempts its line stands for, or 0: it gets no line."""
        now = self._clock()
        written, unwritten = self._pairs.pop((name, address), (None, 0))
        if written is not None and now - written < self._window:
            self._keep((name, address), written, unwritten + 1)
            return 0
        self._keep((name, address), now, 0)
        return unwritten + 1

    def failed(self, name: str, address: str | None) -> int:
        """A failure checked as usual: its line stands for itself and the throttled attempts not yet written."""
        written, unwritten = self._pairs.pop((name, address), (None, 0))
        if written is not None:
            self._keep((name, address), written, 0)
        return unwritten + 1

    def _keep(self, pair: Pair, written: float | None, unwritten: int) -> None:
        self._pairs[pair] = (written, unwritten)  # most recent last: a flood of pairs forgets the oldest first
        while len(self._pairs) > self._max_tracked:
            self._pairs.popitem(last=False)
