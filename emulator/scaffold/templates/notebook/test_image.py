"""__IMAGE__ as a CANFAR notebook session (skaha-emulator's skaha_session fixture)."""

import os

import pytest

IMAGE = os.environ.get("SKAHA_IMAGE", "__IMAGE__")
# check_logs: a start-up that prints a traceback, FATAL, panic: or out of memory fails, as `emulate validate`
# fails it (an expected line goes in the io.skaha-emulator.log.ignore label; see the emulator's README).
pytestmark = pytest.mark.skaha(image=IMAGE, type="notebook", check_logs=True)


def test_jupyterlab_answers_under_the_session_prefix(skaha_session):
    session = skaha_session()
    assert session.http.get("api").status_code == 200


def test_python_runs_as_the_session_user(skaha_session):
    session = skaha_session()
    result = session.exec("python -c 'import json, sys; print(sys.prefix)'")
    assert result.ok, result.output
    assert session.exec("id -u").output.strip() != "0"


def test_home_is_on_arc(skaha_session):
    session = skaha_session()
    assert session.exec("echo hello > $HOME/hello.txt").ok
    assert (session.home / "hello.txt").read_text() == "hello\n"
