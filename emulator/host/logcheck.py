"""The log gates: whether a session's start-up output carries a fatal line, as image teams' release smoke tests
grep for them (`FATAL:|Traceback|panic:|oom-kill|Out of memory`), with the lines to show; `emulate validate`
and the test kit (`session.check_logs()`, `--skaha-check-logs`) apply the same gates and the same ignore rules.

An image lists what to ignore, as Python regular expressions searched in each line: in labels
(`io.skaha-emulator.log.ignore`, and any key under it such as `io.skaha-emulator.log.ignore.cuda`, one
expression each) and in a file in the image (`/etc/skaha-emulator/log-ignore`: one a line, blank lines and
`#` comments skipped). A Python traceback is one finding from its `Traceback` line to its exception's line,
ignored when an expression matches any of its lines (so `No module named 'optional_extra'` ignores the
traceback that ends in it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import docker

from emulator.runtime.docker import ImageFiles, docker_errors

IGNORE_LABEL = "io.skaha-emulator.log.ignore"
IGNORE_FILE = "/etc/skaha-emulator/log-ignore"

# The release gates' set, and the crashes and missing programs no start-up survives unharmed. Left out on
# purpose: "Permission denied", which apps print and survive at every start under a uid that is not the
# image's (a cache folder they fall back from, a probe of /root), so it failed good images.
GATES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Python traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("fatal error", re.compile(r"\bFATAL\b|Fatal (?:Python )?error")),
    ("panic", re.compile(r"\bpanic:")),
    ("out of memory", re.compile(r"oom-kill|OOMKilled|OutOfMemoryError|(?i:out of memory)")),
    ("crash", re.compile(r"Segmentation fault|core dumped")),
    ("missing program", re.compile(r"command not found|: not found$|cannot execute")),
)
TRACEBACK = GATES[0][0]
# Colour and cursor escapes: a logger's colours would hide a word's boundary, and have no place in a report.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


@dataclass(frozen=True)
class IgnoreRules:
    """An image's ignore expressions, and the ones that are not regular expressions, worded."""

    patterns: tuple[re.Pattern[str], ...] = ()
    problems: tuple[str, ...] = ()


NO_RULES = IgnoreRules()


@dataclass(frozen=True)
class Fatal:
    gate: str
    first: int  # the block's lines, 0-based: a traceback spans several
    last: int


@dataclass(frozen=True)
class LogScan:
    lines: tuple[str, ...]
    fatal: tuple[Fatal, ...]
    ignored: tuple[Fatal, ...]

    @property
    def ok(self) -> bool:
        return not self.fatal

    def show(self, limit: int = 3, context: int = 1) -> str:
        """The first `limit` fatal findings with their line numbers, `context` lines either side, the fatal lines
        marked with '>'."""
        shown: list[str] = []
        width = len(str(len(self.lines)))
        for found in self.fatal[:limit]:
            start, end = max(0, found.first - context), min(len(self.lines), found.last + context + 1)
            if shown:
                shown.append("   ...")
            for number in range(start, end):
                mark = ">" if found.first <= number <= found.last else " "
                shown.append(f" {mark} {number + 1:>{width}} | {self.lines[number]}")
        more = len(self.fatal) - limit
        return "\n".join(shown + ([f"   ... and {more} more"] if more > 0 else []))

    def summary(self) -> str:
        gates = ", ".join(dict.fromkeys(found.gate for found in self.fatal))
        return f"{len(self.fatal)} fatal finding(s) in the start-up logs ({gates})"


def rules_from(image_labels: Mapping[str, str], file_text: str) -> IgnoreRules:
    """The ignore expressions an image declares in its labels and its ignore file."""
    declared: list[tuple[str, str]] = []
    for key, value in sorted(image_labels.items()):
        if key == IGNORE_LABEL or key.startswith(f"{IGNORE_LABEL}."):
            declared += [(f"label {key}", line) for line in value.splitlines() if line.strip()]
    for line in file_text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            declared.append((IGNORE_FILE, line.strip()))
    patterns: list[re.Pattern[str]] = []
    problems: list[str] = []
    for where, expression in declared:
        try:
            patterns.append(re.compile(expression))
        except re.error as exc:
            problems.append(f"{expression!r} ({where}) is not a regular expression: {exc}")
    return IgnoreRules(tuple(patterns), tuple(problems))


def image_rules(client: docker.DockerClient, image: str, helper_labels: dict[str, str]) -> IgnoreRules:
    """The ignore expressions of a local image, read without running it."""
    with docker_errors():
        found = client.images.get(image)
        with ImageFiles(client, image, helper_labels) as files:
            text = files.read(IGNORE_FILE)
    return rules_from(found.labels or {}, text)


def _traceback_end(lines: list[str], start: int) -> int:
    """The line of a traceback's exception: the first after its header that is not indented (a frame)."""
    for number in range(start + 1, len(lines)):
        line = lines[number]
        if line and not line[0].isspace() and not line.startswith(_CHAINED):
            return number
    return len(lines) - 1


def _blocks(lines: list[str]) -> Iterable[Fatal]:
    number = 0
    while number < len(lines):
        gate = next((name for name, pattern in GATES if pattern.search(lines[number])), None)
        if gate is None:
            number += 1
            continue
        last = _traceback_end(lines, number) if gate == TRACEBACK else number
        yield Fatal(gate, number, last)
        number = last + 1


def scan(logs: str, rules: IgnoreRules = NO_RULES) -> LogScan:
    """The fatal findings of `logs`, less those an ignore expression matches."""
    lines = [_ESCAPES.sub("", line).rstrip() for line in logs.splitlines()]
    fatal: list[Fatal] = []
    ignored: list[Fatal] = []
    for found in _blocks(lines):
        block = lines[found.first : found.last + 1]
        matched = any(pattern.search(line) for pattern in rules.patterns for line in block)
        (ignored if matched else fatal).append(found)
    return LogScan(tuple(lines), tuple(fatal), tuple(ignored))
