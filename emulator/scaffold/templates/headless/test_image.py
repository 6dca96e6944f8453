"""__IMAGE__ as a CANFAR headless job (skaha-emulator's skaha_session fixture)."""

import os

import pytest

IMAGE = os.environ.get("SKAHA_IMAGE", "__IMAGE__")
pytestmark = pytest.mark.skaha(image=IMAGE, type="headless")


def test_the_job_succeeds_and_leaves_its_result_on_arc(skaha_session):
    job = skaha_session()
    assert job.wait(timeout=300) == 0, job.logs()
    assert "job done" in job.logs()
    assert "job ran on" in (job.home / "job-result.txt").read_text()
