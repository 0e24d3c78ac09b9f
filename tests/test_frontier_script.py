"""benchmarks/frontier.py: the serial-vs-parallel table, on hand-made `reason bench` files in the
format bench writes (a `run` line, then one `sample` line per question, strategy and budget)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_script import load_benchmark

from reasoncli.bench.metrics import wilson
from reasoncli.tune.fit import held_out_mask

IDS = [f"d{d}-arithmetic-heldout-{i}" for d in (1, 2) for i in range(12)]


def sample(qid: str, strategy: str, budget: str, answers: list[str], tokens: list[int],
           max_tokens: int = 128) -> dict:  # fmt: skip
    """A sample line as `reason bench` writes it; the right answer is "1", the run's answer
    is its first branch's (enough for the files here: one branch, or all branches agree)."""
    keys = list(dict.fromkeys(answers))
    return {
        "type": "sample", "id": qid, "strategy": strategy, "budget": budget,
        "branches": len(answers), "budget_tokens": None, "max_tokens": max_tokens,
        "expected": "1", "answer": answers[0], "share": 1.0, "correct": answers[0] == "1",
        "answers": answers, "labels": [keys.index(a) for a in answers],
        "groups": [{"answer": a, "count": answers.count(a), "correct": a == "1"} for a in keys],
        "branch_tokens": tokens, "finish_reasons": ["stop"] * len(answers),
        "prompt_tokens": 40, "tokens": sum(tokens), "verifier_tokens": 0, "stop_reason": None,
        "texts": [f"The answer is {a}." for a in answers],
    }  # fmt: skip


def write(path: Path, model: str, strategy: str, budgets: list[dict], samples: list[dict],
          temperature: float | None = None, min_tokens: int = 0) -> None:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    run = {
        "type": "run", "version": 1, "questions": len(IDS), "model": model, "limit": None,
        "strategies": [strategy], "budgets": budgets, "max_tokens": 128, "seed": 0,
        "temperature": temperature, "min_tokens": min_tokens, "verifier": "confidence",
    }  # fmt: skip
    lines = [run, *samples, {"type": "end", "samples": len(samples), "interrupted": False}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))


def greedy_right(i: int) -> bool:
    return i % 12 < (9 if IDS[i].startswith("d1-") else 3)  # 9 of 12 on d1, 3 of 12 on d2


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    m = tmp_path / "small"
    # vote -n 4: every branch right on d1, every branch wrong on d2
    write(m / "vote.jsonl", "small", "vote", [{"branches": 4, "tokens": None}], [
        sample(q, "vote", "n=4", ["1" if q.startswith("d1-") else "2"] * 4, [10, 11, 12, 13])
        for q in IDS
    ])  # fmt: skip
    write(m / "greedy.jsonl", "small", "vote", [{"branches": 1, "tokens": None}], [
        sample(q, "vote", "n=1", ["1" if greedy_right(i) else "3"], [20 + i % 3])
        for i, q in enumerate(IDS)
    ], temperature=0.0)  # fmt: skip
    write(m / "think.jsonl", "small", "think",
          [{"branches": None, "tokens": 16}, {"branches": None, "tokens": 32}], [
        sample(q, "think", f"{b} tok", ["1" if i % 2 else "4"], [b + 5], max_tokens=b)
        for b in (16, 32) for i, q in enumerate(IDS)
    ])  # fmt: skip
    # a run still being written: five of its 24 questions so far
    write(m / "revise.jsonl", "small", "revise", [{"branches": 1, "tokens": None}], [
        sample(q, "revise", "n=1", ["1"], [90]) for q in IDS[:5]
    ])  # fmt: skip
    (m / "weighted-vote.jsonl").write_text("")  # a run just started: no run line yet
    write(tmp_path / "gemma" / "greedy.jsonl", "gemma-3-270m", "vote",
          [{"branches": 1, "tokens": None}],
          [sample(q, "vote", "n=1", ["1" if i % 4 == 0 else "5"], [30])
           for i, q in enumerate(IDS)], temperature=0.0)  # fmt: skip
    return tmp_path


def rows(text: str, label: str) -> list[list[str]]:
    """The cells of every table row whose first cell is `label`."""
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            out.append(cells)
    return out


def interval(right: int, n: int) -> str:
    low, high = wilson(right, n)
    return f"{right / n * 100:.1f}% ({low * 100:.1f}–{high * 100:.1f})"


def test_table_rows_are_the_files_numbers(
    bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frontier = load_benchmark("frontier")
    png = tmp_path / "frontier.png"
    frontier.main([str(bench_dir), "--plot", str(png)])
    out = capsys.readouterr().out

    assert "# Serial vs parallel frontier: small" in out
    assert "24 questions every file answered (d1 12 and d2 12)" in out
    assert "note: left out small/revise.jsonl: 5 of 24 samples so far" in out
    assert "note: left out small/weighted-vote.jsonl: no `reason bench` run line (yet)" in out

    # greedy: 12 of 24 right (9 of 12 on d1, 3 of 12 on d2), 20/21/22 tokens a question
    tokens = np.array([20 + i % 3 for i in range(len(IDS))], dtype=float)
    d1 = np.array([q.startswith("d1-") for q in IDS])
    every, held = rows(out, "greedy")
    assert every[:6] == ["greedy", "parallel", interval(12, 24), f"{tokens.mean():.1f}", "0.0",
                         f"{tokens.mean():.1f}"]  # fmt: skip
    assert every[6:] == [f"75.0% @ {tokens[d1].mean():.0f}", f"25.0% @ {tokens[~d1].mean():.0f}"]
    mask = held_out_mask(IDS, 0)
    right = [greedy_right(i) for i in range(len(IDS))]
    assert held[2] == interval(int(np.sum(np.array(right)[mask])), int(mask.sum()))
    assert held[3] == f"{tokens[mask].mean():.1f}"

    # think 16 tok: right on odd questions, 21 tokens each; vote n=1 is the first branch alone
    think = rows(out, "think 16 tok")[0]
    assert think[1:6] == ["serial", interval(12, 24), "21.0", "0.0", "21.0"]
    assert rows(out, "vote n=4")[0][2:4] == [interval(12, 24), "46.0"]
    # the bigger model, named by its run line: right on every fourth question
    assert rows(out, "gemma-3-270m: greedy")[0][1:4] == ["bigger model", interval(6, 24), "30.0"]
    # serial paired with the vote with the most tokens at or below its own: n=2 at 10 + 11
    pair = [r for r in rows(out, "think 16 tok") if len(r) == 8 and r[1] == "all"][0]
    assert pair[2:6] == ["24", "50.0% @ 21", "vote n=2", "50.0% @ 21"]
    assert pair[6].startswith("+0.0 (") and pair[7] == "no difference shown"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_partial_includes_a_file_still_being_written(
    bench_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_benchmark("frontier").main([str(bench_dir), "--partial"])
    out = capsys.readouterr().out
    # read, but with 5 questions in common it is too few to pair: named, and the rest reported
    assert "note: left out small/revise.jsonl: only 5 question(s) are in every file" in out
    assert "24 questions every file answered" in out
