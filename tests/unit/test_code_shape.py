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
    }
    assert not too_long, f"split these into functions of at most {MAX_LINES} lines: {sorted(too_long)}"


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
