"""`emulate validate --junit-xml`: the findings as JUnit XML, as CI systems read it."""

from __future__ import annotations

from xml.etree import ElementTree

from emulator.host.validate import Finding, junit_xml


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
