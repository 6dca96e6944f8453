"""A test run's images, for either kit: what it builds from folders (`skaha_session(build="path/")`), and each
image's log ignore rules (read once).

A folder is built under a tag of its own (`skaha-testkit/<folder's name>:<digest of its path>`) with what
`emulate images build` adds (the CAs this machine trusts), at most once a run, and not at all when the image
under that tag was built from the same context (host.builds' digest label): a second run with nothing
changed builds nothing. Each build or reuse is recorded (`builds`), for the run's summary and for tests.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import docker

from emulator.errors import EmulatorError
from emulator.host import logcheck
from emulator.host.builds import Built, build_folder
from emulator.settings import Settings
from emulator.testkit.session import SkahaError

TAG_REPOSITORY = "skaha-testkit"
_NAME_RULE = re.compile(r"[^a-z0-9._-]+")


def folder_tag(folder: Path) -> str:
    """The tag a folder's image gets: its name, readable, and a digest of where it is, so two folders of one
    name never share a tag."""
    resolved = folder.resolve()
    name = _NAME_RULE.sub("-", resolved.name.lower()).strip("-._") or "image"
    return f"{TAG_REPOSITORY}/{name}:{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class BuildRecord:
    """A folder's image as this run got it: host.builds' answer, for the run's summary and for tests."""

    folder: Path
    built: Built

    def describe(self) -> str:
        if self.built.built:
            return f"built {self.built.tag} from {self.folder} in {self.built.seconds:.1f} s"
        return f"{self.built.tag} from {self.folder}: unchanged, nothing built"


class KitImages:
    def __init__(self, settings: Settings, client: docker.DockerClient, helper_labels: dict[str, str]) -> None:
        self._settings = settings
        self._client = client
        self._helper_labels = helper_labels
        self.builds: list[BuildRecord] = []
        self._rules: dict[str, logcheck.IgnoreRules] = {}

    def build(self, folder: Path) -> str:
        """The tag of `folder`'s image, built when its context changed (once a run)."""
        resolved = folder.resolve()
        done = next((record for record in self.builds if record.folder == resolved), None)
        if done is not None:
            return done.built.tag
        tag = folder_tag(resolved)
        try:
            built = build_folder(self._settings, resolved, tag, say=_progress, client=self._client)
        except EmulatorError as exc:
            raise SkahaError(f"skaha_session(build={str(folder)!r}): {exc.message}") from None
        self.builds.append(BuildRecord(resolved, built))
        return built.tag

    def log_rules(self, image: str) -> logcheck.IgnoreRules:
        """What `image` says its logs may carry (its ignore label and file), read once a run."""
        if image not in self._rules:
            try:
                self._rules[image] = logcheck.image_rules(self._client, image, self._helper_labels)
            except EmulatorError as exc:
                raise SkahaError(f"cannot read {image}'s log ignore rules: {exc.message}") from None
        return self._rules[image]


def _progress(line: str) -> None:
    # The test's own capture holds it: shown with the test when it fails, as a build's output would be.
    print(line, file=sys.stderr)
