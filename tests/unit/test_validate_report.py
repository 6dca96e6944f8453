"""`emulate validate --junit-xml`: the findings as JUnit XML, as CI systems read it; and the test kit's account
of an image that did not start."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

from emulator.host.validate import Finding, explain_start, junit_xml
from emulator.profiles import load_profiles

PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "profiles")


def test_failures_and_advice_become_test_cases() -> None:
    findings = [
        Finding("architecture", True, "built for amd64"),
        Finding("program jupyter", False, "jupyter is not on the image's PATH", "install jupyter"),
        Finding("port", False, "exposes 8000/tcp", "EXPOSE 8888", warning=True),
    ]
    suite = ElementTree.fromstring(junit_xml("me/nb:dev", "notebook", findings, 1.5)).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("time")) == (
        "3",
        "1",
        "0",
        "1.500",
    )
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["architecture"].find("failure") is None
    failure = cases["program jupyter"].find("failure")
    assert failure is not None and failure.get("message") == "jupyter is not on the image's PATH"
    assert failure.text is not None and "fix: install jupyter" in failure.text
    assert cases["port"].find("failure") is None
    assert "advice: exposes 8000/tcp" in (cases["port"].findtext("system-out") or "")


def test_a_validation_that_could_not_run_is_an_error() -> None:
    suite = ElementTree.fromstring(junit_xml("nope:1", "notebook", [], 0.1, "image 'nope:1' is not here")).find(
        "testsuite"
    )
    assert suite is not None and suite.get("errors") == "1"
    error = next(suite.iter("error"))
    assert error.get("message") == "image 'nope:1' is not here"


def test_an_image_that_never_answered_is_told_where_and_what_fails() -> None:
    findings = [
        Finding("architecture", True, "built for amd64"),
        Finding("port", False, "exposes 8000/tcp; contributed serves 5000/tcp", "serve on port 5000", warning=True),
        Finding("program sh", False, "sh is not on the image's PATH"),
    ]
    told = explain_start(
        "me/app:1", PROFILES["contributed"], findings, exited=None, where="/session/contrib/abc/", waited=8, output=""
    )
    assert told.splitlines() == [
        f"me/app:1 did not start as a CANFAR contributed session ({PROFILES['contributed'].description}):",
        "  - nothing answered on port 5000 under /session/contrib/abc/ within 8 s: "
        "serve the contributed contract there",
        "  - port (advice): exposes 8000/tcp; contributed serves 5000/tcp -> serve on port 5000",
        "  - program sh: sh is not on the image's PATH",
        "It wrote no output.",
    ]


def test_an_image_that_exited_is_told_so_with_its_last_output() -> None:
    exited = "the container exited with code 1 during start-up"
    told = explain_start("me/nb:1", PROFILES["notebook"], [], exited=exited, where="/", waited=60, output="boom")
    assert told.splitlines()[1:] == [f"  - {exited}: the notebook launch must keep running", "Its last output:", "boom"]
