"""Summarise a results file: accuracy per strategy and budget, subset estimates, cost, overhead.

Everything is recomputed from the saved samples, so a report can be made from a file that is
still being written, was interrupted, or was resumed several times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasoncli.bench.metrics import (
    RESAMPLES,
    bootstrap_mean,
    maj_at_k,
    pass_at_k,
    subset_ks,
    wilson,
)
from reasoncli.bench.picks import finish_order
from reasoncli.bench.store import read_records
from reasoncli.errors import InputError

__all__ = [
    "SUBSETS_NOTE",
    "Cell",
    "Report",
    "SubsetPoint",
    "build_report",
    "largest_runs",
    "question_scores",
    "unique_samples",
]

SUBSETS_NOTE = (
    "pass@k and maj@k for k < N are estimated from random k-subsets of each N-branch run "
    "(no new generation; a tie goes to the branch that finished first, as in `reason vote`); "
    "tokens at k are k/N of the run's; their 95% intervals are bootstrap "
    f"over questions ({RESAMPLES} seeded resamples)."
)
_REQUIRED = ("id", "strategy", "budget", "correct", "labels", "groups", "tokens")


@dataclass
class SubsetPoint:
    k: int
    pass_at: float
    maj_at: float
    tokens: float  # expected generated tokens per question of a k-branch run
    pass_ci: tuple[float, float] = (0.0, 1.0)  # bootstrap 95% over questions
    maj_ci: tuple[float, float] = (0.0, 1.0)


@dataclass
class Cell:
    strategy: str
    budget: str
    branches: int | None
    budget_tokens: int | None
    questions: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    answered: float  # share of questions where the strategy gave an answer
    n: int  # branches per question (the smallest, if they vary): the largest k
    pass_at_n: float | None  # None when the strategy returned no branches
    maj_at_n: float | None
    mean_tokens: float
    mean_prompt_tokens: float
    wall_s: float
    gen_s: float
    tokens_per_s: float  # generated tokens per second of wall time
    subsets: list[SubsetPoint] = field(default_factory=list)
    # Tokens the verifier's model read per question (best-of-n, beam, dvts with a judge), and
    # generated + verifier: compute-optimal is about all the compute. None: not recorded.
    mean_verifier_tokens: float | None = None
    mean_total_tokens: float | None = None


@dataclass
class Report:
    path: str
    dataset: str | None
    format: str | None
    model: str | None
    runs: int
    samples: int
    cells: list[Cell]
    wall_s: float
    gen_s: float
    grade_s: float
    load_s: float
    overhead: float  # share of bench wall time spent outside prompt processing and generation
    notes: list[str] = field(default_factory=list)
    subsets_note: str = SUBSETS_NOTE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_report(path: Path) -> Report:
    """Read and summarise a results file; InputError names a line that is not a result."""
    records = read_records(path)
    runs = [r for r in records.items if r.get("type") == "run"]
    samples, duplicates = unique_samples(records.items, path)
    if not samples and not runs:
        raise InputError(f"{path}: no bench results in this file")
    notes = []
    if records.partial_tail:
        notes.append("ignored an unfinished last line (the run was killed mid-write)")
    if duplicates:
        notes.append(f"ignored {duplicates} repeated sample(s); the first of each was kept")
    wall, gen, grade = _times(records.items)
    header = runs[0] if runs else {}
    return Report(
        path=str(path),
        dataset=header.get("dataset"),
        format=header.get("format"),
        model=header.get("model"),
        runs=len(runs),
        samples=len(samples),
        cells=_cells(samples),
        wall_s=round(wall, 3),
        gen_s=round(gen, 3),
        grade_s=round(grade, 3),
        load_s=round(sum(float(r.get("load_s", 0.0)) for r in runs), 3),
        overhead=max(0.0, 1 - gen / wall) if wall > 0 else 0.0,
        notes=notes,
    )


def unique_samples(items: list[dict[str, Any]], path: Path) -> tuple[list[dict[str, Any]], int]:
    """The sample records, checked, first of each (question, strategy, budget); and how many
    repeats were dropped (a resumed run can write a sample twice)."""
    seen: set[tuple[str, str, str]] = set()
    samples, duplicates = [], 0
    for record in items:
        if record.get("type") != "sample":
            continue
        missing = [f for f in _REQUIRED if f not in record]
        if missing:
            raise InputError(f"{path}:{record['_line']}: sample without {', '.join(missing)}")
        key = (str(record["id"]), str(record["strategy"]), str(record["budget"]))
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        samples.append(record)
    return samples, duplicates


def _times(items: list[dict[str, Any]]) -> tuple[float, float, float]:
    """Wall, generation and grading seconds; an invocation without an `end` line (killed)
    counts the wall time of its samples."""
    wall = gen = grade = 0.0
    segment_wall, ended = 0.0, False
    for record in items:
        kind = record.get("type")
        if kind == "run":
            wall += 0.0 if ended else segment_wall
            segment_wall, ended = 0.0, False
        elif kind == "end":
            wall += float(record.get("wall_s", 0.0))
            segment_wall, ended = 0.0, True
        elif kind == "sample":
            segment_wall += float(record.get("wall_s", 0.0))
            gen += float(record.get("gen_s", 0.0))
            grade += float(record.get("grade_s", 0.0))
    if not ended:
        wall += segment_wall
    return wall, gen, grade


def _cells(samples: list[dict[str, Any]]) -> list[Cell]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in samples:
        groups.setdefault((record["strategy"], record["budget"]), []).append(record)
    strategies = list(dict.fromkeys(s for s, _ in groups))
    cells = [_cell(rows) for rows in groups.values()]
    cells.sort(key=lambda c: (strategies.index(c.strategy), c.budget_tokens or 0, c.branches or 0))
    return cells


def _cell(rows: list[dict[str, Any]]) -> Cell:
    first = rows[0]
    q = len(rows)
    correct = sum(bool(r["correct"]) for r in rows)
    low, high = wilson(correct, q)
    n = min(len(r["labels"]) for r in rows)
    subsets = [_subset(rows, k) for k in subset_ks(n)] if n >= 1 else []
    wall = sum(float(r.get("wall_s", 0.0)) for r in rows)
    tokens = sum(int(r["tokens"]) for r in rows)
    last = subsets[-1] if subsets else None
    judged = all("verifier_tokens" in r for r in rows)
    verifier = sum(int(r["verifier_tokens"]) for r in rows) / q if judged else None
    return Cell(
        strategy=first["strategy"],
        budget=first["budget"],
        branches=first.get("branches"),
        budget_tokens=first.get("budget_tokens"),
        questions=q,
        correct=correct,
        accuracy=correct / q,
        ci_low=low,
        ci_high=high,
        answered=sum(r.get("answer") is not None for r in rows) / q,
        n=n,
        pass_at_n=last.pass_at if last else None,
        maj_at_n=last.maj_at if last else None,
        mean_tokens=tokens / q,
        mean_prompt_tokens=_mean(int(r.get("prompt_tokens", 0)) for r in rows),
        wall_s=round(wall, 3),
        gen_s=round(sum(float(r.get("gen_s", 0.0)) for r in rows), 3),
        tokens_per_s=tokens / wall if wall > 0 else 0.0,
        subsets=subsets,
        mean_verifier_tokens=verifier,
        mean_total_tokens=None if verifier is None else tokens / q + verifier,
    )


def _subset(rows: list[dict[str, Any]], k: int) -> SubsetPoint:
    """Average over questions of each question's own k-of-n estimate, with its interval."""
    scores = np.array([question_scores(r, k) for r in rows], dtype=float)
    pass_at, *pass_ci = bootstrap_mean(scores[:, 0])
    maj_at, *maj_ci = bootstrap_mean(scores[:, 1])
    return SubsetPoint(
        k=k,
        pass_at=pass_at,
        maj_at=maj_at,
        tokens=_mean(int(r["tokens"]) * k / len(r["labels"]) for r in rows),
        pass_ci=(pass_ci[0], pass_ci[1]),
        maj_ci=(maj_ci[0], maj_ci[1]),
    )


def question_scores(sample: dict[str, Any], k: int) -> tuple[float, float]:
    """One question's pass@k and maj@k, estimated from the subsets of its own branches; ties
    go to the branch that finished first, as in `reason vote`."""
    labels: list[int | None] = sample["labels"]
    right = [bool(g["correct"]) for g in sample["groups"]]
    c = sum(1 for label in labels if label is not None and right[label])
    order = None
    if len(sample.get("branch_tokens", ())) == len(sample.get("finish_reasons", ())) == len(labels):
        order = finish_order(sample["branch_tokens"], sample["finish_reasons"])
    return pass_at_k(len(labels), c, k), maj_at_k(labels, right, k, order=order)


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return math.fsum(items) / len(items) if items else 0.0


def largest_runs(cells: list[Cell]) -> list[Cell]:
    """Each strategy's cell with the most branches: its subsets give the whole maj@k curve."""
    best: dict[str, Cell] = {}
    for c in cells:
        if c.strategy not in best or (c.n, c.mean_tokens) > (
            best[c.strategy].n,
            best[c.strategy].mean_tokens,
        ):
            best[c.strategy] = c
    return list(best.values())
