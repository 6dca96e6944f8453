"""__IMAGE__ as a CANFAR contributed app (skaha-emulator's skaha_session fixture)."""

import os

import pytest

IMAGE = os.environ.get("SKAHA_IMAGE", "__IMAGE__")
pytestmark = pytest.mark.skaha(image=IMAGE, type="contributed")


def test_the_app_answers_under_its_stripped_prefix(skaha_session):
    app = skaha_session()
    page = app.http.get("")
    assert page.status_code == 200
    assert "Hello" in page.text


def test_it_runs_as_the_session_user(skaha_session):
    app = skaha_session()
    assert app.exec("id -u").output.strip() != "0"
