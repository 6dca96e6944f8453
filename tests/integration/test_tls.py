"""`emulate up --tls`: HTTPS from the gateway's own CA, which `up` names; everything works through it."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import docker
import httpx
import pytest

from tests.instance import Instance, localhost_client, start_instance, stop_instance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    instance = start_instance(tmp_path_factory.mktemp("tls"), "pytest-tls", docker_client, "--tls")
    try:
        yield instance
    finally:
        stop_instance(instance, docker_client)


def test_https_from_the_named_ca_and_a_session_through_it(tls: Instance) -> None:
    ca = str(tls.verify)
    assert f"trust {ca}" in tls.emulate("up", "--no-build", "--tls").stdout
    assert httpx.get(f"{tls.url}/skaha/availability", verify=ca, timeout=10).status_code == 200
    plain = httpx.get(tls.url.replace("https://", "http://") + "/skaha/availability", timeout=5)
    assert plain.status_code == 400 and "HTTPS" in plain.text  # HTTPS only
    session_id = tls.launch(name="tls")
    session = tls.session(session_id)
    assert session["connectURL"].startswith(f"{tls.session_host(session_id)}/session/notebook/{session_id}/")
    assert httpx.get(f"{tls.url}/session/notebook/{session_id}/api", verify=ca, timeout=10).status_code == 200
    # The session's own host gets its certificate from the same CA when first opened; a host no live session
    # has gets none.
    own_host = localhost_client(verify=ca).get(f"{tls.session_host(session_id)}/session/notebook/{session_id}/api")
    assert own_host.status_code == 200
    # (asked at the TLS layer itself: httpx's mapping of httpcore's errors does not survive the test kit's
    # in-process pytest runs, which drop the modules they imported)
    no_session = urlsplit(tls.session_host("zzzzzzzz"))
    with (
        socket.create_connection(("127.0.0.1", no_session.port or 443), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname=no_session.hostname)
    assert session_id in tls.emulate("ps").stdout  # the CLI trusts the instance's CA by itself
    tls.http.delete(f"/session/{session_id}")
    deadline = time.monotonic() + 30
    while tls.rows():
        assert time.monotonic() < deadline
        time.sleep(0.2)
