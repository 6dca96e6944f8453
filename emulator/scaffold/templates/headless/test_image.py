"""__IMAGE__ as a CANFAR headless job (skaha-emulator's skaha_session fixture)."""

import os

import pytest

IMAGE = os.environ.get("SKAHA_IMAGE", "__IMAGE__")
# check_logs: a start-up that prints a traceback, FATAL, panic: or out of memory fails, as `emulate validate`
# fails it (an expected line goes in the io.skaha-emulator.log.ignore label; see the emulator's README).
pytestmark = pytest.mark.skaha(image=IMAGE, type="headless", check_logs=True)


def test_the_job_succeeds_and_leaves_its_result_on_arc(skaha_session):
    job = skaha_session()
    assert job.wait(timeout=300) == 0, job.logs()
    assert "job done" in job.logs()
    assert "job ran on" in (job.home / "job-result.txt").read_text()
