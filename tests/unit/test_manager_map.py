"""The manager's module docstring names exactly its public members, so the map a newcomer reads cannot drift."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

from emulator.core import sessions
from emulator.core.sessions import SessionManager


def _public_members() -> set[str]:
    """The class's public methods and properties, and the public attributes its constructor sets."""
    on_class = {name for name in dir(SessionManager) if not name.startswith("_")}
    init = ast.parse(textwrap.dedent(inspect.getsource(SessionManager.__init__)))
    on_instance = {
        node.attr
        for node in ast.walk(init)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and not node.attr.startswith("_")
    }
    return on_class | on_instance


def test_the_module_docstring_lists_exactly_the_managers_public_members() -> None:
    assert sessions.__doc__ is not None
    listing = sessions.__doc__.split("\n\n")[1]  # the paragraph after the title
    listed = re.findall(r"`(\w+)`", listing)
    assert len(listed) == len(set(listed)), "a member is listed twice"
    members = _public_members()
    assert {"launch", "stop", "quotas", "bring_up"} <= members  # the check sees methods and attributes alike
    assert set(listed) == members
