"""Which skaha-emulator GitHub Action a new project's workflow uses: the repository and ref the emulator is
installed from (`--emulator`, or where this one came from), when that is a repository on GitHub, which is all
a workflow's `uses:` can name; otherwise a placeholder the workflow's comment asks to fill in."""

from __future__ import annotations

import re

ACTION_FOLDER = ".github/actions/validate"
PLACEHOLDER = f"OWNER/skaha-emulator/{ACTION_FOLDER}@REF"
# pip's form of a requirement from git (PEP 508 direct reference): name @ git+URL[@ref][#fragment]; GitHub's
# repositories as pip reaches them, over https or ssh.
_FROM_GITHUB = re.compile(
    r"@\s*git\+(?:https://(?:[^@/]+@)?|ssh://git@)github\.com/"
    r"(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?(?:@(?P<ref>[^#\s]+))?(?:#\S*)?\s*$"
)
# pip installs a git URL without a ref from the default branch; a workflow's `uses:` must name one.
DEFAULT_REF = "main"


def action_reference(requirement: str) -> str | None:
    """`owner/repo/.github/actions/validate@ref` for a requirement taken from GitHub, else None."""
    found = _FROM_GITHUB.search(requirement)
    if found is None:
        return None
    return f"{found['owner']}/{found['repo']}/{ACTION_FOLDER}@{found['ref'] or DEFAULT_REF}"


def uses_value(requirement: str) -> str:
    """What a new project's workflow writes after `uses:`: the action, or the placeholder saying what goes there."""
    return action_reference(requirement) or f"{PLACEHOLDER}  # skaha-emulator's GitHub repository, and a tag or commit"
