"""The house's size limits, measured: no module in engine/ over 500 lines, no class over 300,
no function over 60.

    python tools/sizes.py engine        # exit 1 and one line per module, class or function over

A class's or function's length runs from its ``class`` or ``def`` line to its last line
(decorators not counted; a nested function counts inside its parent too). Past these sizes a
module, a class or a function does more than one thing: split it along its concerns.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


def oversized(root: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"{path}: {lines} lines (at most {MAX_MODULE_LINES} per module)")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    problems.append(
                        f"{path}:{node.lineno}: class {node.name} is {length} lines "
                        f"(at most {MAX_CLASS_LINES} per class)"
                    )
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(
                        f"{path}:{node.lineno}: {node.name} is {length} lines "
                        f"(at most {MAX_FUNCTION_LINES} per function)"
                    )
    return problems


def main(arguments: list[str]) -> int:
    problems = [line for folder in arguments or ["engine"] for line in oversized(Path(folder))]
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
