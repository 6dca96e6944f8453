"""`emulate init-image TYPE DIR`: a minimal, correct starting point for a CANFAR image of that type.

A Dockerfile on a public base image (with the session-type label, the port and start-up the type needs),
a README, tests using the skaha_session fixture, and CI jobs (a GitHub workflow using skaha-emulator's own
action, .github/actions/validate in this repository; a GitLab CI job doing the same). The files are
the templates beside this module; the project is written into a temporary folder and renamed into place,
so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from emulator.errors import ConfigError
from emulator.scaffold.action import uses_value

TEMPLATES = Path(__file__).resolve().parent / "templates"
TYPES = ("notebook", "desktop-app", "contributed", "headless")
EMULATOR_REQUIREMENT = "skaha-emulator"
# Where each template file goes in the project (the rest keep their names, at the top).
PLACES = {"test_image.py": "tests/test_image.py"}
# The README's part on `emulate dev`, for the types it runs (a desktop-app needs a desktop, a job ends).
EDIT_AND_RUN = TEMPLATES / "snippets" / "edit-and-run.md"
EDIT_AND_RUN_TYPES = ("notebook", "contributed")
_NAME_RULE = re.compile(r"[^a-z0-9._-]+")


def default_image(directory: Path) -> str:
    """A local image name from the folder's name (Docker's rules: lowercase, no spaces)."""
    name = _NAME_RULE.sub("-", directory.resolve().name.lower()).strip("-._") or "my-image"
    return f"{name}:dev"


def _place(relative: Path) -> Path:
    """dot-github -> .github (a wheel's package data keeps no dotfiles); tests into tests/."""
    parts = [("." + p[len("dot-") :]) if p.startswith("dot-") else p for p in relative.parts]
    placed = Path(*parts)
    return Path(PLACES.get(str(placed), str(placed)))


def installed_from() -> str | None:
    """Where pip took this skaha-emulator from, when CI can take it from there too (a git repository:
    PEP 610's direct_url.json); None for a local folder or file, which a CI machine does not have."""
    try:
        recorded = metadata.distribution("skaha-emulator").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not recorded:
        return None
    origin = json.loads(recorded)
    vcs = origin.get("vcs_info")
    if not vcs or vcs.get("vcs") != "git":
        return None
    return f"skaha-emulator @ git+{origin['url']}@{vcs['commit_id']}"


def render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"__{key}__", value)
    return text


def init_image(
    session_type: str, directory: Path, image: str | None = None, emulator: str = EMULATOR_REQUIREMENT
) -> list[Path]:
    """Write the project; returns the files written (relative). DIR must be new or empty."""
    if session_type not in TYPES:
        raise ConfigError(
            f"init-image makes {', '.join(TYPES)} images (got {session_type!r}); "
            "desktop, CARTA and Firefly sessions run the platform's own images"
        )
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"{directory} exists and is not an empty folder: choose a new one")
    image = image or default_image(directory)
    values = {
        "IMAGE": image,
        "TYPE": session_type,
        "NAME": directory.resolve().name,
        # The example desktop-app's window title (not its terminal's, which is named after the image).
        "TITLE": f"{_NAME_RULE.sub('-', image.rsplit('/', 1)[-1].split(':')[0])} clock",
        "EMULATOR": emulator,
        # The workflow's `uses:`: skaha-emulator's action where the emulator comes from GitHub, else a placeholder.
        "ACTION": uses_value(emulator),
    }
    values["EDIT_AND_RUN"] = render(EDIT_AND_RUN.read_text(), values) if session_type in EDIT_AND_RUN_TYPES else ""
    directory.parent.mkdir(parents=True, exist_ok=True)
    draft = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    written: list[Path] = []
    try:
        for source_root in (TEMPLATES / "common", TEMPLATES / session_type):
            for source in sorted(p for p in source_root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                target = _place(source.relative_to(source_root))
                (draft / target).parent.mkdir(parents=True, exist_ok=True)
                (draft / target).write_text(render(source.read_text(), values))
                if source.suffix == ".sh":
                    (draft / target).chmod(0o755)
                written.append(target)
        draft.chmod(0o755)
        if directory.exists():
            directory.rmdir()  # empty, checked above
        draft.rename(directory)
    except BaseException:
        shutil.rmtree(draft, ignore_errors=True)
        raise
    return sorted(written)
