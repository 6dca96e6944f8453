"""Sign-in back-off: the limit-th wrong password in a window waits until the oldest failure leaves it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from emulator.core.throttle import FailureLines, SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_thirtieth_wrong_password_in_a_minute_waits_until_the_first_is_a_minute_old() -> None:
    clock = Clock()
    throttle = SignInThrottle(clock=clock)
    for _ in range(29):
        assert throttle.wait("alice", "10.0.0.1") == 0
        throttle.failed("alice", "10.0.0.1")
        clock.now += 1
    assert throttle.wait("alice", "10.0.0.1") == 31  # the first failure, at 1000, leaves the window at 1060
    assert throttle.wait("ALICE", "10.0.0.9") == 31  # the name, whatever its case, from anywhere
    assert throttle.wait("bob", "10.0.0.1") == 31  # the address, whatever the name
    assert throttle.wait("bob", "10.0.0.9") == 0
    clock.now += 31
    assert throttle.wait("alice", "10.0.0.1") == 0


def test_the_owner_getting_in_clears_the_name_not_the_address() -> None:
    clock = Clock()
    throttle = SignInThrottle(limit=3, clock=clock)
    throttle.failed("alice", "10.0.0.1")
    throttle.failed("alice", "10.0.0.1")
    throttle.succeeded("alice")
    assert throttle.wait("alice", "10.0.0.2") == 0
    assert throttle.wait("carol", "10.0.0.1") == 60


def test_made_up_names_never_grow_the_memory_past_its_bound() -> None:
    throttle = SignInThrottle(clock=Clock(), max_tracked=100)
    for number in range(1000):
        throttle.failed(f"guess{number}", None)
    assert len(throttle._failures) == 100


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 5)), max_size=200))
def test_never_more_than_limit_minus_one_are_checked_in_any_window(attempts: list[tuple[str, float]]) -> None:
    clock = Clock()
    throttle = SignInThrottle(limit=5, window=10, clock=clock)
    checked: list[float] = []
    for name, step in attempts:
        clock.now += step
        if throttle.wait(name, "10.0.0.1") == 0:
            checked.append(clock.now)
            throttle.failed(name, "10.0.0.1")  # every one wrong
    for index, start in enumerate(checked):
        assert len([t for t in checked[index:] if t < start + 10]) <= 4


def test_a_throttled_pair_gets_a_line_a_window_which_counts_the_attempts_it_stands_for() -> None:
    clock = Clock()
    lines = FailureLines(window=60, clock=clock)
    assert lines.failed("alice", "10.0.0.1") == 1  # each failure the throttle let through has its line
    assert lines.throttled("alice", "10.0.0.1") == 1  # the first throttled attempt has one too
    assert [lines.throttled("alice", "10.0.0.1") for _ in range(500)] == [0] * 500
    assert lines.throttled("(unknown user)", "10.0.0.1") == 1  # another pair: a line of its own
    clock.now += 60
    assert lines.throttled("alice", "10.0.0.1") == 501  # a window on: one line for the 500 and itself
    assert lines.throttled("alice", "10.0.0.1") == 0
    clock.now += 61  # the throttle let one through: its failure's line counts the unwritten one too
    assert lines.failed("alice", "10.0.0.1") == 2
    assert lines.throttled("alice", "10.0.0.1") == 1  # a window after its last throttled line


def test_the_pairs_kept_for_the_lines_are_bounded() -> None:
    lines = FailureLines(clock=Clock(), max_tracked=100)
    for number in range(1000):
        lines.throttled("(unknown user)", f"10.0.{number // 256}.{number % 256}")
    assert len(lines._pairs) == 100
