"""The log gates `emulate validate` and the test kit share: what is fatal, what an image may ignore, what is shown."""

from __future__ import annotations

import pytest

from emulator.host.logcheck import IGNORE_FILE, IGNORE_LABEL, rules_from, scan
from emulator.host.validate import log_finding

TRACEBACK_THEN_SERVING = """\
starting the app
Traceback (most recent call last):
  File "/opt/app/app.py", line 3, in <module>
    import optional_extra
ModuleNotFoundError: No module named 'optional_extra'
serving on :5000
"""


@pytest.mark.parametrize(
    "line",
    [
        "Traceback (most recent call last):",
        "FATAL: could not open the database",
        "2024-01-01 [FATAL] worker died",
        "Fatal Python error: Segmentation fault",
        "panic: runtime error: invalid memory address",
        "[12345.6] oom-kill:constraint=CONSTRAINT_MEMCG",
        "Out of memory: Killed process 42 (python)",
        "fatal error: runtime: out of memory",
        'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
        "/skaha/startup.sh: line 3: xterm: command not found",
        "sh: 1: jupyter: not found",
        "\x1b[31mFATAL\x1b[0m: coloured",
    ],
)
def test_each_gate_fails_its_line(line: str) -> None:
    found = scan(f"ok\n{line}\nok\n")
    assert not found.ok and [f.first for f in found.fatal] == [1]


@pytest.mark.parametrize(
    "line",
    [
        "mkdir: cannot create directory '/root/.cache': Permission denied",  # survived at every start: not a gate
        "NON_FATAL_WARNINGS=1",
        "no panic here",
        "[I 2024-01-01 12:00:00 ServerApp] Jupyter Server 2.14 is running at:",
    ],
)
def test_lines_that_are_not_fatal(line: str) -> None:
    assert scan(f"{line}\n").ok


def test_a_traceback_is_one_finding_from_its_header_to_its_exception() -> None:
    found = scan(TRACEBACK_THEN_SERVING)
    assert [(f.gate, f.first, f.last) for f in found.fatal] == [("Python traceback", 1, 4)]
    assert found.show().splitlines() == [
        "   1 | starting the app",
        " > 2 | Traceback (most recent call last):",
        ' > 3 |   File "/opt/app/app.py", line 3, in <module>',
        " > 4 |     import optional_extra",
        " > 5 | ModuleNotFoundError: No module named 'optional_extra'",
        "   6 | serving on :5000",
    ]
    assert found.summary() == "1 fatal finding(s) in the start-up logs (Python traceback)"


def test_a_chained_traceback_runs_to_its_last_exception() -> None:
    logs = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "a.py", line 1',
            "KeyError: 'x'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            '  File "a.py", line 3',
            "RuntimeError: no x",
        ]
    )
    assert [(f.first, f.last) for f in scan(logs).fatal] == [(0, 2), (6, 8)]


def test_an_image_ignores_a_traceback_by_any_of_its_lines_and_a_line_by_itself() -> None:
    rules = rules_from({IGNORE_LABEL: r"No module named 'optional_extra'"}, "")
    found = scan(TRACEBACK_THEN_SERVING + "FATAL: real\n", rules)
    assert [f.first for f in found.fatal] == [6] and [f.first for f in found.ignored] == [1]
    assert scan("FATAL: expected at start\n", rules_from({}, "# why\n\nexpected at start\n")).ok


def test_labels_under_the_key_and_the_file_each_give_expressions() -> None:
    rules = rules_from(
        {IGNORE_LABEL + ".cuda": "no CUDA devices", IGNORE_LABEL: "a\nb", "other": "c", IGNORE_LABEL + "x": "d"},
        "  # a comment\n^e$\n",
    )
    assert [p.pattern for p in rules.patterns] == ["a", "b", "no CUDA devices", "^e$"] and rules.problems == ()


def test_an_expression_that_is_not_one_fails_the_logs_check_with_where_it_is() -> None:
    rules = rules_from({IGNORE_LABEL: "oops("}, "")
    assert rules.patterns == () and "'oops(' (label io.skaha-emulator.log.ignore)" in rules.problems[0]
    finding = log_finding("all fine\n", rules)
    assert not finding.ok and IGNORE_FILE in finding.fix


def test_the_validate_finding_shows_the_lines_and_counts_what_was_ignored() -> None:
    failed = log_finding(TRACEBACK_THEN_SERVING, rules_from({}, ""))
    assert not failed.ok and "> 5 | ModuleNotFoundError: No module named 'optional_extra'" in failed.detail
    passed = log_finding(TRACEBACK_THEN_SERVING, rules_from({}, "optional_extra"))
    assert passed.ok and passed.detail == "no fatal errors (1 ignored by the image's patterns)"


def test_only_the_first_findings_are_shown() -> None:
    found = scan("".join(f"FATAL: {n}\nok\nok\n" for n in range(5)))
    assert len(found.fatal) == 5 and found.show().endswith("... and 2 more")
