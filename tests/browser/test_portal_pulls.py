"""The portal's Advanced launch: an image named from a registry is pulled, and its card shows the pull."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import docker
import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import shot, sign_in
from tests.instance import Instance, Person
from tests.registry import CuttableRelay, Registry, unique_image

pytestmark = pytest.mark.slow


@pytest.fixture
def slow_registry_image(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[str]:
    """A notebook-labelled image that is not here, behind a relay slow enough to watch its pull."""
    registry = Registry(tmp_path_factory.mktemp("portal-registry"))
    local = unique_image(docker_client, "portal-pull:local", 16 << 20, session_type="notebook")
    name = registry.push(docker_client, local, "workshop/slow", "1.0")
    relay = CuttableRelay(registry.port, rate=1 << 20)
    through_relay = name.replace(registry.host, relay.host)
    for gone in (local, name):
        docker_client.images.remove(gone, force=True)
    yield through_relay
    relay.cut()
    registry.stop()
    for gone in (through_relay, name):
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(gone, force=True)


def test_an_image_named_under_advanced_is_pulled_with_its_progress_on_the_card(
    secured: Instance, people: dict[str, Person], page: Page, slow_registry_image: str
) -> None:
    sign_in(page, secured, people["bob"])
    page.get_by_label("Type").select_option("notebook")
    page.get_by_text("Advanced: an image from a registry").click()
    page.get_by_label("Registry username").fill("bob")
    page.get_by_label("Image name").fill(slow_registry_image)
    page.get_by_label("Session name").fill("pulled-nb")
    page.get_by_role("button", name="Launch").click()
    expect(page.locator("#launch-error")).to_have_text("give both the registry username and its secret, or neither")

    page.get_by_label("Registry username").fill("")
    page.get_by_role("button", name="Launch").click()
    card = page.locator(".card", has_text="pulled-nb")
    expect(card.locator(".chip")).to_have_text("Pending", timeout=30_000)
    page.locator("[data-refresh]").click()
    expect(card.locator(".pull")).to_have_text(
        re.compile(r"Pulling image: \d+ of \d+ layers(, \d+ of \d+ MB)?"), timeout=30_000
    )
    shot(page, "portal-pulling")
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete pulled-nb").click()
    expect(page.locator(".card", has_text="pulled-nb")).to_have_count(0, timeout=30_000)
