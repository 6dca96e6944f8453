"""The code's shape, held by a check: no function in emulator/ runs longer than a screen.

A function is measured from its `def` line to its last line (decorators aside), nested functions on their
own as well as inside the function that holds them; every emulator/**/*.py counts, the scaffold's
templates included.
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_LINES = 60
ROOT = Path(__file__).resolve().parents[2]

# Functions over the limit that another branch is splitting, by file and dotted name (Class.method,
# outer.inner). Whoever merges that branch empties this; an entry no longer over the limit fails the
# test, so the list cannot outlive the split.
TO_SPLIT: dict[str, set[str]] = {
    # Branch split-manager: the host facts out of the app's lifespan, the manager along its seams.
    "emulator/api/app.py": {"create_app", "create_app.lifespan"},
    "emulator/core/sessions.py": {"SessionManager.__init__", "SessionManager._bring_up"},
}

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(node: ast.AST, outer: str = "") -> list[tuple[str, Function]]:
    """Every function under `node` (methods and nested ones too), with its dotted name."""
    found: list[tuple[str, Function]] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{outer}{child.name}"
            if not isinstance(child, ast.ClassDef):
                found.append((name, child))
            found += _functions(child, f"{name}.")
        else:
            found += _functions(child, outer)
    return found


def _lines(function: Function) -> int:
    assert function.end_lineno is not None
    return function.end_lineno - function.lineno + 1


def long_functions(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """Each file's functions over MAX_LINES, with their lengths, by path relative to `root`."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted((root / "emulator").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, function in _functions(tree):
            if _lines(function) > MAX_LINES:
                found.setdefault(path.relative_to(root).as_posix(), {})[name] = _lines(function)
    return found


def test_no_function_is_longer_than_60_lines() -> None:
    too_long = {
        f"{path}::{name} ({lines} lines)"
        for path, functions in long_functions().items()
        for name, lines in functions.items()
        if name not in TO_SPLIT.get(path, set())
    }
    assert not too_long, f"split these into functions of at most {MAX_LINES} lines: {sorted(too_long)}"


def test_every_function_waiting_for_its_split_is_still_too_long() -> None:
    found = long_functions()
    done = {f"{path}::{name}" for path, names in TO_SPLIT.items() for name in names if name not in found.get(path, {})}
    assert not done, f"no longer over {MAX_LINES} lines (or gone): take them off TO_SPLIT: {sorted(done)}"


def _body(indent: int, lines: int) -> str:
    return "".join(f"{' ' * indent}x{i} = {i}\n" for i in range(lines))


def test_the_measure_counts_nested_functions_and_methods(tmp_path: Path) -> None:
    (tmp_path / "emulator").mkdir()
    (tmp_path / "emulator" / "shape.py").write_text(
        "def outer():\n    def inner():\n"  # inner: its def line and 60 more; outer: one more still
        + _body(8, MAX_LINES)
        + "class Kit:\n    async def start(self):\n"
        + _body(8, MAX_LINES)
        + "def fits():\n"  # exactly at the limit
        + _body(4, MAX_LINES - 1)
    )
    assert long_functions(tmp_path) == {
        "emulator/shape.py": {"outer": MAX_LINES + 2, "outer.inner": MAX_LINES + 1, "Kit.start": MAX_LINES + 1}
    }
