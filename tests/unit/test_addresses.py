"""Addresses and MACs picked together (Podman), so a reused address keeps the MAC the gateway knows it by."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from emulator.runtime.addresses import free_address, mac_for


def test_the_mac_is_dockers_for_the_address() -> None:
    assert mac_for("198.18.0.5") == "02:42:c6:12:00:05"  # what Docker's bridge gives 198.18.0.5
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_a_full_network_leaves_the_choice_to_the_engine() -> None:
    taken = [f"198.18.0.{host}/30" for host in (1, 2)]
    assert free_address("198.18.0.0/30", "198.18.0.1", taken) is None


@given(st.sets(st.integers(min_value=1, max_value=62), max_size=61), st.integers(min_value=1, max_value=62))
def test_the_address_is_the_next_free_one_after_the_last_and_never_the_gateway(used: set[int], last: int) -> None:
    taken = [f"198.18.0.{host}/26" for host in used]
    chosen = free_address("198.18.0.0/26", "198.18.0.1", taken, f"198.18.0.{last}")
    free = set(range(2, 63)) - used
    if not free:
        assert chosen is None
        return
    assert chosen is not None
    host = int(chosen.rsplit(".", 1)[1])
    following = sorted(h for h in free if h > last) + sorted(h for h in free if h <= last)
    assert host == following[0]  # round-robin: an address just left is the last to come round again


def test_the_first_address_without_a_last_one() -> None:
    assert free_address("198.18.0.0/26", "198.18.0.1", ["198.18.0.2/26"]) == "198.18.0.3"
