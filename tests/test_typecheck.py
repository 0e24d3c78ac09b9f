"""mypy on reasoncli/ (the [tool.mypy] settings in pyproject.toml): CI runs only pytest, so the
type check is a test. Its cache lives in .mypy_cache, so a second run takes seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reasoncli_type_checks() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "reasoncli"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
