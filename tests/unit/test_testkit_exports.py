"""The kit's public names: what image developers import is pinned, each name resolves, and nothing else leaks
(as httpx's tests/test_exported_members.py pins its own)."""

from __future__ import annotations

import pytest

import emulator.testkit as testkit

PUBLIC = ["ContractBroken", "ExecResult", "Launch", "SkahaError", "SkahaSession"]


def test_the_kits_public_names_are_exactly_these() -> None:
    assert testkit.__all__ == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_resolves_to_a_class_of_the_kit(name: str) -> None:
    found = getattr(testkit, name)
    assert isinstance(found, type) and found.__name__ == name
    assert found.__module__.startswith("emulator.testkit.")


def test_a_name_outside_the_list_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="StandaloneKit"):
        testkit.StandaloneKit  # noqa: B018
