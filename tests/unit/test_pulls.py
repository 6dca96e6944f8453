"""Pure parts of image pulls: skaha's registry header, the engine's failures in people's words, and progress."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.core.policy import registry_credentials
from emulator.core.pulls import PullProgress
from emulator.errors import InvalidRequest
from emulator.host.images import split_name
from emulator.runtime.base import PullUpdate, RegistryCredentials
from emulator.runtime.pull_failures import pull_failure

SKAHAS_400 = "Invalid input.  Must be in form of username:secret"


def _header(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_registry_header_is_base64_of_user_colon_secret_and_the_secret_may_hold_colons() -> None:
    assert registry_credentials(None) is None
    assert registry_credentials(_header("ada:pa:ss")) == RegistryCredentials("ada", "pa:ss")
    assert "pa:ss" not in repr(registry_credentials(_header("ada:pa:ss")))  # never in a log line


@pytest.mark.parametrize("header", ["", "!!", _header("nocolon"), _header(":secret"), _header("user:"), "YWRh\n:"])
def test_a_malformed_registry_header_gets_skahas_400(header: str) -> None:
    with pytest.raises(InvalidRequest, match=rf"^{re.escape(SKAHAS_400)}$"):
        registry_credentials(header)


USERNAMES = st.text(min_size=1, max_size=20).filter(lambda name: ":" not in name)
SECRETS = st.text(min_size=1, max_size=20)


@given(USERNAMES, SECRETS)
def test_credentials_come_back_as_they_were_encoded(username: str, secret: str) -> None:
    assert registry_credentials(_header(f"{username}:{secret}")) == RegistryCredentials(username, secret)


@given(
    st.one_of(
        st.text(max_size=40),  # anything at all
        st.builds(lambda u, s: _header(f"{u}:{s}"), st.text(max_size=20), st.text(max_size=20)),  # a pair, or not
        st.binary(max_size=30).map(lambda raw: base64.b64encode(raw).decode()),  # base64 of anything, UTF-8 or not
    )
)
def test_any_header_is_either_credentials_or_skahas_400(header: str) -> None:
    try:
        found = registry_credentials(header)
    except InvalidRequest as refused:
        assert refused.message == SKAHAS_400
        return
    # Accepted: the header was base64 of UTF-8 "username:secret", both there, the username without ':'.
    assert found is not None and found.username and found.secret and ":" not in found.username
    assert base64.b64decode(header.strip(), validate=True).decode() == f"{found.username}:{found.secret}"


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
