"""The code's shape, as the project holds it (issue: diagnosis as declared rules): no function outside the
tests is over 60 lines; ruff's complexity rules (C901, PLR091x) are on in pyproject.toml."""

from __future__ import annotations

import ast
import tomllib

from tests.conftest import ROOT

LIMIT = 60


def test_no_function_outside_the_tests_is_over_60_lines() -> None:
    long = []
    for folder in ("runbook", "checks", "reports", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > LIMIT:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "\n".join(long)


def test_the_complexity_rules_are_on() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "C901" in lint["select"] and "PL" in lint["select"]
    assert not {"C901", "PLR0911", "PLR0912", "PLR0913", "PLR0915", "PLR0917"} & set(lint["ignore"])
