"""Readiness as the platform judges it, as a testcontainers wait strategy: the session's app answers its
probe through the gateway (core.probe's rules). A container that ends first fails at once."""

from __future__ import annotations

import time
from typing import Any

import httpx
from testcontainers.core.waiting_utils import WaitStrategy

from emulator.core.probe import counts_as_ready
from emulator.profiles import Probe


class ExitedAtStart(Exception):
    def __init__(self, exit_code: int) -> None:
        super().__init__(f"the container exited with code {exit_code} during start-up")
        self.exit_code = exit_code


class NeverReady(Exception):
    pass


class AnswersThroughGateway(WaitStrategy):
    """Polls `url` (the session's probe path on the gateway) every `interval` seconds until the app answers."""

    def __init__(self, url: str, probe: Probe, answered_by_gateway: str, timeout: float, interval: float = 0.05):
        super().__init__()
        self._url = url
        self._probe = probe
        self._answered_by_gateway = answered_by_gateway
        self._startup_timeout = timeout
        self.with_poll_interval(interval)

    def wait_until_ready(self, container: Any) -> None:
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=0.5)) as client:
            while True:
                container.reload()
                state = container.get_wrapped_container().attrs["State"]
                if state["Status"] in ("exited", "dead") or state.get("Restarting") or state.get("RestartCount"):
                    raise ExitedAtStart(int(state.get("ExitCode") or 0))
                if self._answers(client):
                    return
                if time.monotonic() > deadline:
                    raise NeverReady(f"nothing answered within {self._startup_timeout:.0f} s")
                time.sleep(self._poll_interval)

    def _answers(self, client: httpx.Client) -> bool:
        try:
            response = client.get(self._url)
        except httpx.ReadTimeout:
            return counts_as_ready(self._probe, None, self._answered_by_gateway)
        except (OSError, httpx.HTTPError):
            return False
        return counts_as_ready(self._probe, response, self._answered_by_gateway)
