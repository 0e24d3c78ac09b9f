"""Layouts a person reads: `models list`, `logs list` on a terminal and in a pipe, panel titles.

The list commands run in-process (`run_cli`: stdout is a buffer, as a pipe is not a terminal),
and in a real process on a pty where the terminal matters.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys

import pytest
from cli_run import run_cli
from rich.console import Console

from reasoncli.events import BranchFinished, BranchStarted, BranchText, RunStarted
from reasoncli.history import record_run
from reasoncli.models.catalog import load_catalog
from reasoncli.render.live import LiveView
from reasoncli.results import BranchResult, Result
from reasoncli.strategies.base import StrategyOptions

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def on_a_terminal(*args: str, columns: int) -> str:
    """stdout on a pty of `columns` columns; returns what the terminal received."""
    master, slave = os.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reasoncli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(master)
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.mark.parametrize("columns", [80, 120])
def test_models_list_keeps_descriptions_and_aliases_whole(columns: int) -> None:
    proc = run_cli("models", "list", columns=columns)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    flat = " ".join(proc.stdout.split())
    catalog = load_catalog()
    starts = [i for i, line in enumerate(lines) if line and not line.startswith(" ")]
    for spec in catalog:
        assert " ".join(spec.description.split()) in flat, spec.name
        for alias in spec.aliases:
            assert re.search(rf"[ (]{re.escape(alias)}[,)]", flat), alias
        first = next(i for i in starts if lines[i].split()[0] == spec.name)
        following = starts[starts.index(first) + 1] if first != starts[-1] else len(lines)
        assert following - first <= 3, f"{spec.name} takes {following - first} lines"
    if columns >= 100:
        assert "mode" in lines[0]


def _log_runs() -> str:
    long_question = "Natalia sold clips to 48 of her friends in April, and then she sold half "
    long_question += "as many clips in May. How many clips did Natalia sell altogether?"
    for question, answer in (("2+2?", "4"), (long_question, "72")):
        branch = BranchResult(0, f"so {answer}", answer, 3, "eos")
        result = Result(question, "vote", "smollm2-135m", answer, 1.0, branches=[branch])
        record_run(question, "smollm2-135m", "vote", StrategyOptions(), result, 0, False)
    return long_question


def test_logs_list_piped_is_one_whole_tab_separated_line_a_run() -> None:
    question = _log_runs()
    proc = run_cli("logs", "list", columns=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert len(rows) == 2 and all(len(row) == 9 for row in rows)
    newest = rows[0]
    assert newest[2:6] == ["vote", "smollm2-135m", "72", "100%"]
    assert newest[7] == "ok" and newest[8] == question  # whole, not cut at 48 characters


def test_logs_list_on_a_terminal_is_one_line_a_run() -> None:
    _log_runs()
    screen = on_a_terminal("logs", "list", columns=100)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert len(lines) == 3, screen  # the header and one line for each run
    assert all(len(line) <= 100 for line in lines)
    assert lines[1].split()[:1] == ["2"] and "Natalia" in lines[1]


def test_beam_panel_titles_are_never_cut_mid_word() -> None:
    """Twelve search nodes with labels at 120 columns: four panels a row leave each title 24
    cells, too few for `#10 step 3 · 45 tok · pruned`; a shorter whole title is shown."""
    console = Console(file=io.StringIO(), width=120, height=60, force_terminal=True)
    view = LiveView(console)
    view.handle(RunStarted("beam", "m", 10, 12, 64))
    statuses = {}
    for i in range(12):
        view.handle(BranchStarted(i, None, f"step {i % 4 + 1}"))
        view.handle(BranchText(i, "12 + 30 = 42\n", 45))
        if i % 3:
            statuses[i] = "pruned" if i % 3 == 1 else "answered"
            view.handle(BranchFinished(i, None, statuses[i], 45))
    console.print(view.renderable())
    screen = ANSI.sub("", console.file.getvalue())  # type: ignore[attr-defined]
    titles = re.findall(r"╭─ (#\d+[^╮]*?) ─*╮", screen)
    assert len(titles) == 12, screen
    for title in titles:
        number = int(title[1:].split()[0])
        status = statuses.get(number, "running")
        assert title.endswith(status) or title == f"#{number}", title


@pytest.mark.embedded
def test_docs_memory_limit_example_is_what_the_tool_prints() -> None:
    """The docs show a refused request word for word; run its command and compare."""
    from pathlib import Path

    page = Path(__file__).parent.parent / "docs" / "models-and-hardware.md"
    text = page.read_text(encoding="utf-8")
    block = re.search(
        r"```\n\$ (REASON_MEMORY_LIMIT=\S+) (reason ask .*?)\n(Error: .*?)\n```", text, re.S
    )
    assert block, f"the REASON_MEMORY_LIMIT example of {page}"
    env_var, command, shown = block[1], block[2], " ".join(block[3].split())
    name, value = env_var.split("=")
    args = shlex.split(command)[1:]
    proc = subprocess.run(
        [sys.executable, "-m", "reasoncli", *args],
        input="",
        text=True,
        capture_output=True,
        env={**os.environ, name: value, "REASON_NO_LOG": "1"},
        timeout=120,
    )
    assert proc.returncode == 5
    assert " ".join(proc.stderr.split()) == shown
