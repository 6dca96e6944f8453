"""Idle culling's rules: how long a session has been idle, when its owner is warned, when it goes, and what the
dashboard says of it; and the gateway's open connections, read from a real TCP table."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from emulator.core.idle import (
    READY_REASONS,
    WARNING,
    IdleRule,
    Verdict,
    idle_since,
    judge,
    judge_again,
    notice,
    verdict_words,
)
from emulator.core.models import Event, Session, Status
from emulator.errors import ConfigError
from emulator.runtime.sockets import outbound_peers
from emulator.settings import load_settings
from tests.factories import NOW, make_session

HOUR = timedelta(hours=1)
RULE = IdleRule(timedelta(hours=3))


def event(reason: str, when: datetime, message: str = "") -> Event:
    return Event("k3x9q2ab", "Normal", reason, message, when, when)


def running(**overrides: object) -> Session:
    return make_session(status=Status.RUNNING, **overrides)


def test_the_warning_comes_an_hour_before_or_halfway_under_two_hours() -> None:
    assert RULE.lead == HOUR
    assert IdleRule(timedelta(hours=2)).lead == HOUR
    assert IdleRule.from_hours(0.5) == IdleRule(timedelta(minutes=30))
    assert IdleRule(timedelta(minutes=30)).lead == timedelta(minutes=15)
    assert IdleRule.from_hours(None) is None


def test_culling_is_off_unless_set_and_takes_fractions_of_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMULATE_IDLE_CULL_HOURS", raising=False)
    assert load_settings().idle_cull_hours is None
    monkeypatch.setenv("EMULATE_IDLE_CULL_HOURS", "0.25")
    assert IdleRule.from_hours(load_settings().idle_cull_hours) == IdleRule(timedelta(minutes=15))
    for wrong in ("0", "-1", "soon"):
        monkeypatch.setenv("EMULATE_IDLE_CULL_HOURS", wrong)
        with pytest.raises(ConfigError, match=f"EMULATE_IDLE_CULL_HOURS='{wrong}'"):
            load_settings()


def test_idle_is_counted_from_the_last_visit_or_from_when_it_became_ready() -> None:
    ready = event(READY_REASONS[0], NOW + HOUR)  # a long pull: it was of no use before it answered
    assert idle_since(running(), []) == NOW
    assert idle_since(running(), [ready]) == NOW + HOUR
    assert idle_since(running(last_activity=NOW + 2 * HOUR), [ready]) == NOW + 2 * HOUR
    assert idle_since(running(last_activity=NOW + HOUR / 2), [ready]) == NOW + HOUR


def test_a_session_is_warned_then_deleted_at_its_deadline() -> None:
    session = running(last_activity=NOW)
    assert judge(session, [], NOW + 2 * HOUR - timedelta(seconds=1), RULE) is None
    assert judge(session, [], NOW + 2 * HOUR, RULE) == Verdict(False, NOW, NOW + 3 * HOUR)
    warned = [event(WARNING, NOW + 2 * HOUR, "deleted at 03:00 UTC")]
    assert judge(session, warned, NOW + 2 * HOUR + HOUR / 2, RULE) is None
    assert judge(session, warned, NOW + 3 * HOUR, RULE) == Verdict(True, NOW, NOW + 3 * HOUR)


def test_nobody_loses_a_session_they_were_not_warned_of_an_hour_before() -> None:
    session = running(last_activity=NOW)
    late = NOW + 10 * HOUR  # the service was down through the warning and the deadline
    assert judge(session, [], late, RULE) == Verdict(False, NOW, late + HOUR)
    warned = [event(WARNING, late)]
    assert judge(session, warned, late + HOUR / 2, RULE) is None
    assert judge(session, warned, late + HOUR, RULE) == Verdict(True, NOW, late + HOUR)


def test_use_after_the_warning_takes_it_back_and_the_dashboard_says_so() -> None:
    warned = [event(WARNING, NOW + 2 * HOUR, "This session will be stopped at 03:00 UTC for inactivity")]
    assert notice(running(last_activity=NOW), warned) == warned[0].message
    used = running(last_activity=NOW + 2 * HOUR + timedelta(minutes=1))
    assert notice(used, warned) == ""
    assert judge(used, warned, NOW + 3 * HOUR, RULE) is None  # a new idle spell: its own warning first
    assert judge(used, warned, NOW + 4 * HOUR + timedelta(minutes=1), RULE) == Verdict(
        False, used.last_activity or NOW, NOW + 5 * HOUR + timedelta(minutes=1)
    )
    assert notice(make_session(status=Status.FAILED, last_activity=NOW), warned) == ""


def test_a_session_is_judged_again_as_it_is_once_the_gateways_connections_were_looked_at() -> None:
    """That look awaits (the gateway's TCP table, each session's address): what came meanwhile decides."""
    warned = [event(WARNING, NOW + 2 * HOUR)]
    late = NOW + 3 * HOUR
    session = running(last_activity=NOW)
    assert judge_again(session, warned, late, RULE, removing=False) == Verdict(True, NOW, late)
    assert judge_again(None, warned, late, RULE, removing=False) is None  # its owner deleted it: no cull, no line
    assert judge_again(session, warned, late, RULE, removing=True) is None  # its removal began
    for status in (Status.TERMINATING, Status.FAILED, Status.SUCCEEDED):
        assert judge_again(make_session(last_activity=NOW, status=status), warned, late, RULE, removing=False) is None
    used = running(last_activity=late - timedelta(seconds=1))  # the owner's visit, logged during the look
    assert judge_again(used, warned, late, RULE, removing=False) is None


def test_the_warning_says_when_it_goes_and_that_a_renew_keeps_nothing() -> None:
    warning = verdict_words(Verdict(False, NOW, NOW + 3 * HOUR))
    assert warning.startswith(f"This session will be stopped at {NOW + 3 * HOUR:%H:%M} UTC for inactivity")
    assert warning.endswith("open it to keep it; renewing does not.")
    assert verdict_words(Verdict(True, NOW, NOW + 3 * HOUR)) == (
        f"Stopped for inactivity: no traffic through the gateway since {NOW:%H:%M} UTC"
    )


@contextmanager
def connected(listen_on: str, client: str) -> Iterator[int]:
    """A TCP connection from `client` to a listener on `listen_on` (addresses of this machine's loopback)."""
    family = socket.AF_INET6 if ":" in listen_on else socket.AF_INET
    with closing(socket.socket(family)) as listener:
        listener.bind((listen_on, 0))
        listener.listen()
        port = listener.getsockname()[1]
        with closing(socket.socket(socket.AF_INET)) as outgoing:
            outgoing.bind((client, 0))
            outgoing.connect(("127.77.0.2" if family == socket.AF_INET6 else listen_on, port))
            accepted, _ = listener.accept()
            with closing(accepted):
                yield port


def tables() -> str:
    return "".join(
        Path(f"/proc/net/{name}").read_text() for name in ("tcp", "tcp6") if Path(f"/proc/net/{name}").exists()
    )


def test_the_connections_a_namespace_opened_are_told_from_those_it_accepted() -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this machine")
    with connected("127.77.0.2", "127.77.0.1"):
        peers = outbound_peers(tables())
    assert "127.77.0.2" in peers  # the client's side: it opened the connection
    assert "127.77.0.1" not in peers  # the listener's side: it accepted it
    assert "127.77.0.2" not in outbound_peers(tables())  # closed


def test_an_accepted_connection_on_a_dual_stack_listener_is_not_taken_for_an_opened_one() -> None:
    if not socket.has_ipv6 or not Path("/proc/net/tcp6").exists():
        pytest.skip("no IPv6 here")
    with connected("::", "127.77.0.3"):
        peers = outbound_peers(tables())
    assert "127.77.0.2" in peers and "127.77.0.3" not in peers


def test_rows_of_the_kernels_tables_are_read_whatever_comes_around_them() -> None:
    # A listener on :::8080 (dual stack), a connection it accepted from ::ffff:192.168.0.9, one the namespace
    # opened from port 41000 to 192.168.0.5:5000, and a line that is no row.
    table = (
        "  sl  local_address                         remote_address                        st\n"
        "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0\n"
        "   1: 0000000000000000FFFF00000400A8C0:1F90 0000000000000000FFFF00000900A8C0:A410 01 0\n"
        "   0: 0200A8C0:A028 0500A8C0:1388 01 00000000:00000000\n"
        "garbage: x y 01\n"
    )
    if socket.htonl(1) == 1:  # a big-endian machine prints its words the other way round
        pytest.skip("the sample is of a little-endian machine")
    assert outbound_peers(table) == {"192.168.0.5"}
