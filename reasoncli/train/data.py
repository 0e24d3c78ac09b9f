"""Training problems: the built-in arithmetic task or any `reason bench` dataset, minus a
held-out part that training never sees and that `reason bench` can score afterwards."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from reasoncli.bench.datasets import detect_format, load_dataset, resolve_data_path
from reasoncli.errors import InputError, UsageError
from reasoncli.train import arithmetic

__all__ = [
    "TASKS",
    "TrainData",
    "TrainProblem",
    "file_data",
    "heldout_line",
    "task_data",
    "write_heldout",
]

TASKS = ("arithmetic",)
# The arithmetic pool is fixed, not sized by --steps, so a resumed run sees the same data.
ARITHMETIC_POOL = 2000


@dataclass(frozen=True)
class TrainProblem:
    id: str
    question: str
    answer: str
    multiple_choice: bool = False
    line: str | None = None
    """The original JSONL record, kept so held-out problems are written back unchanged."""


@dataclass(frozen=True)
class TrainData:
    train: list[TrainProblem]
    heldout: list[TrainProblem]
    source: str
    """What the problems are, for summaries: "arithmetic (difficulty 1)" or a file path."""


def task_data(
    task: str, *, difficulty: int, seed: int, limit: int | None, heldout: int
) -> TrainData:
    """Generated problems: `limit` (default ARITHMETIC_POOL) to train on, `heldout` to test."""
    if task not in TASKS:
        raise UsageError(f"unknown --task {task!r}; known: {', '.join(TASKS)}")
    train = arithmetic.generate(limit or ARITHMETIC_POOL, difficulty=difficulty, seed=seed)
    held = arithmetic.generate(heldout, difficulty=difficulty, seed=seed, split="heldout")
    return TrainData(
        train=[TrainProblem(f"{task}-{i}", p.question, p.answer) for i, p in enumerate(train)],
        heldout=[
            TrainProblem(f"{task}-heldout-{i}", p.question, p.answer) for i, p in enumerate(held)
        ],
        source=f"{task} (difficulty {difficulty})",
    )


def file_data(data: str, *, limit: int | None, heldout: int) -> TrainData:
    """A bench dataset; the `heldout` problems with the smallest content hashes are set aside,
    so the choice does not depend on the order of the file."""
    path = resolve_data_path(data)
    _require_answers(path)
    dataset = load_dataset(path, limit=limit)
    if heldout >= len(dataset.items):
        raise UsageError(
            f"--heldout {heldout} leaves nothing to train on: {path} has {len(dataset.items)} "
            "question(s)"
        )
    held_ids = {item.id for item in sorted(dataset.items, key=lambda i: i.digest)[:heldout]}
    lines = _raw_lines(path) if heldout else {}
    problems = [
        TrainProblem(
            item.id, item.question, item.expected, item.multiple_choice, lines.get(item.line)
        )
        for item in dataset.items
    ]
    return TrainData(
        train=[p for p in problems if p.id not in held_ids],
        heldout=[p for p in problems if p.id in held_ids],
        source=str(path),
    )


def _require_answers(path: Path) -> None:
    """GRPO's rewards compare against the expected answer: say so, rather than "unknown format"."""
    try:
        with path.open(encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        record = json.loads(first) if first else None
    except json.JSONDecodeError:
        return  # load_dataset names the line and the problem
    if isinstance(record, dict) and detect_format(record) is None:
        if "question" in record or "problem" in record:
            raise InputError(
                f"{path}: the questions have no answers; training rewards need the expected "
                "answer of each question (field 'answer', or a MATH 'solution')"
            )


def _raw_lines(path: Path) -> dict[int, str]:
    with path.open(encoding="utf-8") as handle:
        return {n: line.strip() for n, line in enumerate(handle, start=1) if line.strip()}


def heldout_line(problem: TrainProblem) -> str:
    """The problem's original record, or a generic one for generated problems."""
    if problem.line is not None:
        return problem.line
    return json.dumps({"id": problem.id, "question": problem.question, "answer": problem.answer})


def write_heldout(problems: list[TrainProblem], path: Path) -> Path:
    """Write held-out problems as JSONL that `reason bench` reads: original records when the
    problems came from a file, else generic `{"id", "question", "answer"}` lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for p in problems:
            out.write(heldout_line(p) + "\n")
    os.replace(tmp, path)
    return path
