"""benchmarks/reproduce.py: every stage is a real command with real flags, and the quick tables
regenerate byte for byte from the committed result files (the full check is
`python benchmarks/reproduce.py tables`, about two minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from benchmark_script import load_benchmark

from reasoncli.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


REPRO = load_benchmark("reproduce")


def _unknown_flags(argv: tuple[str, ...]) -> set[str]:
    target, rest = typer.main.get_command(app), list(argv)
    while rest and rest[0] in getattr(target, "commands", {}):
        target, rest = target.commands[rest[0]], rest[1:]  # type: ignore[attr-defined]
    assert not hasattr(target, "commands"), f"{argv}: no such command"
    known = {o for p in target.params for o in (*p.opts, *p.secondary_opts)}
    flags = {w.split("=")[0] for w in rest if w.startswith("-") and not w[1:2].isdigit()}
    return flags - known


@pytest.mark.parametrize("stage", [s for s in REPRO.STAGES if not s.python], ids=str)
def test_every_stage_uses_real_flags(stage: object) -> None:
    for argv in (stage.argv, stage.resume):  # type: ignore[attr-defined]
        if argv:
            assert not _unknown_flags(argv), argv


def test_every_table_is_committed_and_reason_tables_use_real_flags() -> None:
    for table in REPRO.TABLES:
        assert (REPRO.RESULTS / table.file).is_file(), table.file
        if not table.script:
            assert not _unknown_flags(table.argv), table.argv
        else:
            assert (ROOT / "benchmarks" / table.script).is_file()


@pytest.mark.parametrize("name", ["verifier-auc-t10-arith2-prm.txt", "grpo-pk4-vs-t10-train.txt"])
def test_quick_tables_regenerate_byte_for_byte(name: str) -> None:
    table = next(t for t in REPRO.TABLES if t.file == name)
    got, err = REPRO.regenerate(table, REPRO.RESULTS)
    assert got == (REPRO.RESULTS / name).read_bytes(), err
