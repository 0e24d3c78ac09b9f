"""Training problems: the built-in arithmetic task or any `reason bench` dataset, minus a
held-out part that training never sees and that `reason bench` can score afterwards."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reasoncli.bench.datasets import detect_format, load_dataset, resolve_data_path
from reasoncli.errors import InputError, UsageError
from reasoncli.train import arithmetic, gsm8k_steps, phrasings

__all__ = [
    "TASKS",
    "TrainData",
    "TrainProblem",
    "file_data",
    "heldout_line",
    "task_data",
    "write_heldout",
]

TASKS = ("arithmetic", "phrasings", "gsm8k-steps", "mixed")
TASK_HELP = {
    "arithmetic": "templated problems, held out by a hash of the text (--difficulty 1-3)",
    "phrasings": "one-step problems from a grammar of phrasings; whole sentence shapes, names "
    "and items held out",
    "gsm8k-steps": "one- and two-step GSM8K train problems; whole source problems held out",
    "mixed": "phrasings, arithmetic (difficulties 1-2) and gsm8k-steps together",
}
# The arithmetic pool is fixed, not sized by --steps, so a resumed run sees the same data.
ARITHMETIC_POOL = 2000
MIXED_SHARES = {"phrasings": 1100, "arithmetic-1": 250, "arithmetic-2": 250, "gsm8k-steps": 400}
"""The mixed pool (2,000 problems): mostly new phrasings; the generator's own sentences so the
hash split is not forgotten; GSM8K one-step problems first, as a 135M model gets few two-step
ones right and an all-wrong group teaches nothing."""


@dataclass(frozen=True)
class TrainProblem:
    id: str
    question: str
    answer: str
    multiple_choice: bool = False
    line: str | None = None
    """The original JSONL record, kept so held-out problems are written back unchanged."""
    origin: str | None = None
    """Where a generated problem comes from: a sentence shape ("add-3"), a GSM8K source
    ("gsm8k-train-12") or a template family ("arithmetic-1")."""


@dataclass(frozen=True)
class TrainData:
    train: list[TrainProblem]
    heldout: list[TrainProblem]
    source: str
    """What the problems are, for summaries: "arithmetic (difficulty 1)" or a file path."""
    provenance: dict[str, Any] | None = None
    """Which shapes, sources and name pools training could draw from, which are in the held-out
    file, and which no training run of the task ever draws (written to run.json), so an
    evaluation can show it never saw a problem's kind."""


def task_data(
    task: str, *, difficulty: int, seed: int, limit: int | None, heldout: int
) -> TrainData:
    """Generated problems: `limit` (default ARITHMETIC_POOL) to train on, `heldout` to test."""
    if task not in TASKS:
        raise UsageError(f"unknown --task {task!r}; known: {', '.join(TASKS)}")
    size = limit or ARITHMETIC_POOL
    if task == "arithmetic":
        train = _arithmetic(size, difficulty, seed, "train")
        held = _arithmetic(heldout, difficulty, seed, "heldout")
        source = f"{task} (difficulty {difficulty})"
    elif task == "phrasings":
        train, held = _phrasings(size, seed, "train"), _phrasings(heldout, seed, "heldout")
        source = "phrasings"
    elif task == "gsm8k-steps":
        train = _gsm8k_train(size, seed, one_step_first=False)
        held = _gsm8k_heldout(heldout)
        source = "gsm8k-steps"
    else:
        train = _mixed(size, seed)
        third = heldout // 3
        held = (
            _phrasings(heldout - 2 * third, seed, "heldout")
            + _arithmetic(third, 1, seed, "heldout")
            + _gsm8k_heldout(third)
        )
        source = "mixed (phrasings, arithmetic 1-2, gsm8k-steps)"
    return TrainData(
        train=[replace(p, id=f"{task}-{i}") for i, p in enumerate(train)],
        heldout=[replace(p, id=f"{task}-heldout-{i}") for i, p in enumerate(held)],
        source=source,
        provenance=_provenance(task, train, held),
    )


def _arithmetic(n: int, difficulty: int, seed: int, split: arithmetic.Split) -> list[TrainProblem]:
    if n == 0:
        return []
    problems = arithmetic.generate(n, difficulty=difficulty, seed=seed, split=split)
    origin = f"arithmetic-{difficulty}"
    return [TrainProblem("", p.question, p.answer, origin=origin) for p in problems]


def _phrasings(n: int, seed: int, split: phrasings.Split) -> list[TrainProblem]:
    if n == 0:
        return []
    problems = phrasings.generate(n, seed=seed, split=split)
    return [TrainProblem("", p.question, p.answer, origin=p.shape) for p in problems]


def _gsm8k_train(n: int, seed: int, *, one_step_first: bool) -> list[TrainProblem]:
    """Up to `n` training sources, seeded order; with `one_step_first`, every one-step
    problem before any two-step one."""
    pool = gsm8k_steps.sources("train")
    random.Random(f"gsm8k:{seed}").shuffle(pool)
    if one_step_first:
        pool.sort(key=lambda s: s.steps)  # stable: the seeded order stays within a step count
    return [TrainProblem("", s.question, s.answer, origin=s.id) for s in pool[:n]]


def _gsm8k_heldout(n: int) -> list[TrainProblem]:
    if n == 0:
        return []
    return [
        TrainProblem("", s.question, s.answer, origin=s.id) for s in gsm8k_steps.balanced_heldout(n)
    ]


def _mixed(n: int, seed: int) -> list[TrainProblem]:
    """The MIXED_SHARES pool scaled to `n`, shuffled by the seed."""
    total = sum(MIXED_SHARES.values())
    k = {name: max(1, round(n * share / total)) for name, share in MIXED_SHARES.items()}
    pool = (
        _phrasings(k["phrasings"], seed, "train")
        + _arithmetic(k["arithmetic-1"], 1, seed, "train")
        + _arithmetic(k["arithmetic-2"], 2, seed, "train")
        + _gsm8k_train(k["gsm8k-steps"], seed, one_step_first=True)
    )
    random.Random(f"mixed:{seed}").shuffle(pool)
    return pool[:n]


def _provenance(
    task: str, train: list[TrainProblem], held: list[TrainProblem]
) -> dict[str, Any] | None:
    if task == "arithmetic":
        return None

    def kinds(problems: list[TrainProblem]) -> dict[str, Any]:
        origins = [p.origin or "" for p in problems]
        shapes = sorted({o for o in origins if o in _SHAPE_IDS})
        sources = sorted(
            {o for o in origins if o.startswith("gsm8k-")}, key=lambda o: int(o.rsplit("-", 1)[1])
        )
        families = sorted({o for o in origins if o.startswith("arithmetic-")})
        return {
            "problems": len(problems),
            "shapes": shapes,
            "arithmetic": families,
            "gsm8k_sources": sources,
        }

    return {
        "train": kinds(train),
        "heldout": kinds(held),
        "never_trained": {
            "shapes": phrasings.shape_ids("heldout"),
            "gsm8k_sources": [s.id for s in gsm8k_steps.sources("heldout")],
        },
        "names": {"train": list(phrasings.TRAIN_NAMES), "heldout": list(phrasings.HELDOUT_NAMES)},
        "items": {"train": list(phrasings.TRAIN_ITEMS), "heldout": list(phrasings.HELDOUT_ITEMS)},
        "rules": (
            "phrasings: whole shapes and name/item pools held out (fixed in "
            "reasoncli/train/phrasings.py); gsm8k: whole sources held out by question hash "
            f"(1 in {gsm8k_steps.HELDOUT_EVERY}); arithmetic: problems held out by text hash"
        ),
    }


_SHAPE_IDS = frozenset(s.id for s in phrasings.SHAPES)


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
    record = {"id": problem.id, "question": problem.question, "answer": problem.answer}
    if problem.origin is not None and not problem.origin.startswith("arithmetic-"):
        record["origin"] = problem.origin  # the shape or source, for per-kind analysis
    return json.dumps(record)


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
