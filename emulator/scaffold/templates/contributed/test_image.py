"""__IMAGE__ as a CANFAR contributed app (skaha-emulator's skaha_session fixture)."""

import os

import pytest

IMAGE = os.environ.get("SKAHA_IMAGE", "__IMAGE__")
# check_logs: a start-up that prints a traceback, FATAL, panic: or out of memory fails, as `emulate validate`
# fails it (an expected line goes in the io.skaha-emulator.log.ignore label; see the emulator's README).
pytestmark = pytest.mark.skaha(image=IMAGE, type="contributed", check_logs=True)


def test_the_app_answers_under_its_stripped_prefix(skaha_session):
    app = skaha_session()
    page = app.http.get("")
    assert page.status_code == 200
    assert "Hello" in page.text


def test_it_runs_as_the_session_user(skaha_session):
    app = skaha_session()
    assert app.exec("id -u").output.strip() != "0"
