"""The import graph's layering, checked on the source so a lazy import cannot slip past."""

from __future__ import annotations

import ast
from pathlib import Path

import reasoncli

ROOT = Path(reasoncli.__file__).parent


def _imports(package: str) -> set[tuple[str, str]]:
    """(imported reasoncli module, importing file) for every import under `package`."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found.update((n, path.name) for n in names if n.startswith("reasoncli."))
    return found


def test_bench_never_imports_train() -> None:
    """train/ sits above bench/ (it reuses bench's plots and data); the reverse would cycle."""
    assert {(m, f) for m, f in _imports("bench") if m.startswith("reasoncli.train")} == set()
