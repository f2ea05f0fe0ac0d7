"""docs/reliability.md stays true: every test it cites as evidence exists under that name.

Each row of the document ends with the tests that show it (`tests/...py::test_name`, further
tests of the same file as `::test_name`). Renaming or deleting such a test without updating the
document fails here, so the table never cites evidence that is gone.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"

_CITATION = re.compile(r"(tests/[\w/]+\.py)?::(\w+)")


def cited_tests() -> list[tuple[str, str]]:
    """(file, test name) for every citation, in document order; `::name` reuses the last file."""
    cited, current = [], ""
    for line in DOC.read_text().splitlines():
        for match in _CITATION.finditer(line):
            current = match.group(1) or current
            assert current, f"{match.group(0)} cites a test before naming its file"
            cited.append((current, match.group(2)))
    return cited


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_test_the_reliability_document_cites_exists() -> None:
    cited = cited_tests()
    assert len(cited) >= 20, "docs/reliability.md should cite the tests behind its rows"
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.is_file() or name not in defined_tests(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"
