"""How a failed pull is worded for the person who launched it: what went wrong, then the engine's own words.

Its own module, free of the Docker SDK, so that the brain can word a pull that fails on purpose (a fault a
launch asked for, core/faults.py) exactly as a real one.
"""

from __future__ import annotations

from emulator.errors import ImagePullError

# How the engine words a failed pull, and what that means to the person who launched it (first match wins).
_PULL_FAILURES: list[tuple[tuple[str, ...], str]] = [
    (
        ("no basic auth credentials", "authentication required", "unauthorized", "denied", "forbidden"),
        "the registry refused access: it needs credentials (x-skaha-registry-auth, "
        "`emulate launch --registry-auth`), or the ones given are wrong",
    ),
    (
        ("http response to https client",),
        "the registry answers plain HTTP: list it in Docker's insecure-registries (/etc/docker/daemon.json)",
    ),
    (
        ("manifest unknown", "not found", "name unknown", "repository does not exist"),
        "the registry has no such image: check its name and tag",
    ),
    (
        ("connection refused", "no such host", "dial tcp", "i/o timeout", "server misbehaving", "tls handshake"),
        "the registry cannot be reached",
    ),
    (
        ("unexpected eof", "connection reset", "broken pipe", "eof"),
        "the connection to the registry broke during the pull",
    ),
]


_CONNECTION_LOST = ("the registry cannot be reached", "the connection to the registry broke during the pull")


def pull_failure(engine_words: str, layers_moved: bool = False) -> ImagePullError:
    """A failed pull as skaha's users meet it in events: what went wrong, then the engine's own words."""
    lowered = engine_words.lower()
    reason = next(
        (meaning for needles, meaning in _PULL_FAILURES if any(n in lowered for n in needles)),
        "the engine could not pull it",
    )
    if layers_moved and reason in _CONNECTION_LOST:  # it answered, then went away (the engine retried meanwhile)
        reason = "the registry stopped answering during the pull"
    return ImagePullError(f"{reason} ({engine_words.strip()})")
