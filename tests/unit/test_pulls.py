"""Pure parts of image pulls: skaha's registry header, the engine's failures in people's words, and progress."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.core.policy import registry_credentials
from emulator.core.pulls import PullProgress
from emulator.errors import InvalidRequest
from emulator.host.images import split_name
from emulator.runtime.base import PullUpdate, RegistryCredentials
from emulator.runtime.docker import pull_failure


def _header(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_registry_header_is_base64_of_user_colon_secret_and_the_secret_may_hold_colons() -> None:
    assert registry_credentials(None) is None
    assert registry_credentials(_header("ada:pa:ss")) == RegistryCredentials("ada", "pa:ss")
    assert "pa:ss" not in repr(registry_credentials(_header("ada:pa:ss")))  # never in a log line


@pytest.mark.parametrize("header", ["", "!!", _header("nocolon"), _header(":secret"), _header("user:"), "YWRh\n:"])
def test_a_malformed_registry_header_gets_skahas_400(header: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^Invalid input\.  Must be in form of username:secret$"):
        registry_credentials(header)


@given(st.text(max_size=40))
def test_any_header_is_either_credentials_or_skahas_400(header: str) -> None:
    with contextlib.suppress(InvalidRequest):
        registry_credentials(header)


@pytest.mark.parametrize(
    ("engine_words", "moved", "reason"),
    [
        ("manifest for 127.0.0.1:5000/a:nope not found: manifest unknown", False, "has no such image"),
        ('Head "http://127.0.0.1:5000/v2/a/manifests/1": no basic auth credentials', False, "refused access"),
        ("unauthorized: authentication required", False, "refused access"),
        ('Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused', False, "cannot be reached"),
        ('Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused', True, "stopped answering"),
        ("unexpected EOF", True, "stopped answering"),
        ("something new", False, "the engine could not pull it"),
    ],
)
def test_pull_failures_say_what_went_wrong_then_the_engines_words(engine_words: str, moved: bool, reason: str) -> None:
    message = pull_failure(engine_words, moved).message
    assert reason in message and message.endswith(f"({engine_words})")


def test_progress_counts_layers_done_and_bytes_of_the_layers_that_move() -> None:
    progress = PullProgress("x:1")
    for update in (
        PullUpdate("a", "Already exists"),
        PullUpdate("b", "Pulling fs layer"),
        PullUpdate("c", "Pulling fs layer"),
        PullUpdate("b", "Downloading", 10, 100),
        PullUpdate("c", "Downloading", 5, 50),
        PullUpdate("b", "Download complete"),
        PullUpdate("b", "Extracting", 300, 400),  # extraction counts unpacked bytes: not download progress
        PullUpdate("b", "Pull complete"),
    ):
        progress.update(update)
    summary = progress.summary()
    assert summary["layers"] == {"done": 2, "total": 3}
    assert summary["bytes"] == {"current": 105, "total": 150}


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("a", ("a", "latest")),
        ("a:1", ("a", "1")),
        ("127.0.0.1:5000/a", ("127.0.0.1:5000/a", "latest")),
        ("127.0.0.1:5000/a:2", ("127.0.0.1:5000/a", "2")),
        ("images.canfar.net/skaha/astroml:latest", ("images.canfar.net/skaha/astroml", "latest")),
    ],
)
def test_names_split_into_repository_and_tag_as_docker_tags_them(name: str, split: tuple[str, str]) -> None:
    assert split_name(name) == split
