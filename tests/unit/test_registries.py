"""Which registries a launch may pull from: an operator's list, else (sign-in on) none at inward addresses."""

from __future__ import annotations

import asyncio

import pytest

from emulator.core.registries import RegistryPolicy, registry_of
from emulator.errors import InvalidRequest


@pytest.mark.parametrize(
    ("reference", "registry"),
    [
        ("ubuntu", "docker.io"),
        ("images.canfar.net/skaha/notebook:1", "images.canfar.net"),
        ("localhost:5000/a/b", "localhost:5000"),
        ("127.0.0.1:5000/x@sha256:" + "a" * 64, "127.0.0.1:5000"),
    ],
)
def test_the_registry_of_a_reference(reference: str, registry: str) -> None:
    assert registry_of(reference) == registry


@pytest.mark.parametrize(
    "reference",
    [
        "127.0.0.1:2375/x:1",  # the engine's own port, the host's loopback
        "localhost:22/x:1",
        "10.1.2.3:5000/x:1",
        "192.168.1.1/x:1",
        "169.254.169.254/latest:1",  # a cloud's metadata service
        "172.17.0.1:5000/x:1",
        "[::1]:5000/x:1",
        "[fe80::1]:5000/x:1",
    ],
)
def test_with_sign_in_on_a_registry_at_an_inward_address_is_refused(reference: str) -> None:
    with pytest.raises(InvalidRequest, match="not pulled on this shared server: it is at a loopback"):
        asyncio.run(RegistryPolicy(None, public_only=True).check(reference))
    asyncio.run(RegistryPolicy(None, public_only=False).check(reference))  # one person's laptop: theirs to reach


def test_public_addresses_pass_and_an_unresolvable_name_is_left_to_the_pull() -> None:
    policy = RegistryPolicy(None, public_only=True)
    asyncio.run(policy.check("93.184.216.34:5000/x:1"))
    asyncio.run(policy.check("no-such-host.invalid/x:1"))


def test_an_operators_list_is_the_whole_rule() -> None:
    policy = RegistryPolicy(["127.0.0.1", "images.canfar.net"], public_only=True)
    asyncio.run(policy.check("127.0.0.1:5000/team/x:1"))  # listed by host: any port
    asyncio.run(policy.check("images.canfar.net/skaha/x:1"))
    for refused in ("ubuntu", "10.0.0.1:5000/x:1", "ghcr.io/a/b:1"):
        with pytest.raises(InvalidRequest, match=r"the registries allowed are 127\.0\.0\.1, images\.canfar\.net"):
            asyncio.run(policy.check(refused))
