"""benchmarks/lib.sh, the functions the resumable benchmark scripts share, run by bash against a
fake `reason` that logs its arguments (the scripts themselves take hours; each is parsed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from benchmark_script import BENCHMARKS

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _bash(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """`script` after sourcing lib.sh, in tmp_path, with OUT=out and a `reason` that appends its
    arguments to reason.log and prints a line (which run_or_resume must drop)."""
    fake = tmp_path / "bin" / "reason"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/usr/bin/env bash\necho "$*" >> reason.log\necho noise\n')
    fake.chmod(0o755)
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail\n. "{BENCHMARKS}/lib.sh"\n{script}'],
        cwd=tmp_path,
        env={"PATH": f"{fake.parent}:/usr/bin:/bin", "OUT": "out"},
        capture_output=True,
        text=True,
        check=True,
    )


def test_run_or_resume_starts_a_file_then_resumes_it(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    run = "run_or_resume out/a.jsonl data.jsonl -m 'a model' -s vote\n"
    first = _bash(tmp_path, run)
    (tmp_path / "out" / "a.jsonl").write_text("{}\n")
    second = _bash(tmp_path, run)
    assert first.stdout == second.stdout == ""
    assert (tmp_path / "reason.log").read_text().splitlines() == [
        "bench run data.jsonl -m a model -s vote -q -o out/a.jsonl",
        "bench run --resume out/a.jsonl -q",
    ]


def test_run_or_resume_starts_over_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.jsonl").touch()
    _bash(tmp_path, "run_or_resume out/a.jsonl data.jsonl\n")
    assert (tmp_path / "reason.log").read_text() == "bench run data.jsonl -q -o out/a.jsonl\n"


def test_stamp_prints_and_keeps_the_seconds(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    done = _bash(tmp_path, 'start=$((SECONDS - 5))\nstamp "lbl/run" "$start"\n')
    assert re.fullmatch(r"lbl/run: [56] s\n", done.stdout)
    assert (tmp_path / "out" / "times.txt").read_text() == done.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.sh")))
def test_benchmark_script_parses(script: str) -> None:
    subprocess.run(["bash", "-n", str(BENCHMARKS / script)], check=True)
