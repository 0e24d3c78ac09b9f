"""Results files side by side: what a change of model (a trained export, another quant, another
prompt) gained, with intervals that respect that the same questions were asked.

Only questions present in every file count, so every comparison is paired. Each metric is a mean
of per-question scores: the strategy's own answer (right or wrong), and pass@k and maj@k
estimated from subsets of each question's branches (`report.question_scores`). A file's accuracy
gets the Wilson interval, as in `bench report`; every other interval is a percentile bootstrap
over questions with a fixed seed. A difference resamples the same questions in both files, so it
is judged on the pairing, not on two independent intervals that overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasoncli.bench.metrics import RESAMPLES, bootstrap_mean, subset_ks, wilson
from reasoncli.bench.report import question_scores, unique_samples
from reasoncli.bench.store import read_records
from reasoncli.errors import InputError, UsageError

__all__ = [
    "CellComparison",
    "Comparison",
    "CurvePoint",
    "Estimate",
    "MetricRow",
    "compare_files",
    "gain_metric",
]

ACCURACY = "accuracy"


@dataclass
class Estimate:
    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass
class MetricRow:
    metric: str
    values: list[Estimate]
    """One per file, in the order given."""
    deltas: list[Estimate | None]
    """Each file minus the first (paired); None for the first."""


@dataclass
class CurvePoint:
    k: int
    pass_at: Estimate
    maj_at: Estimate
    tokens: float


@dataclass
class CellComparison:
    strategy: str
    budget: str
    questions: int
    """Questions answered in every file: the ones compared."""
    n: int
    """Branches per question (the smallest in any file): the largest k."""
    mean_tokens: list[float]
    rows: list[MetricRow]
    curves: list[list[CurvePoint]]
    """Per file, pass@k and maj@k for k = 1, 2, 4, ..., n."""


@dataclass
class Comparison:
    files: list[str]
    labels: list[str]
    cells: list[CellComparison]
    resamples: int = RESAMPLES
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def gain_metric(n: int) -> str:
    """The row that says what voting adds over one sample on the same model."""
    return f"maj@{n} − pass@1"


@dataclass
class _File:
    path: Path
    header: dict[str, Any]
    cells: dict[tuple[str, str], dict[str, dict[str, Any]]]
    """(strategy, budget) -> question id -> sample."""
    notes: list[str]


def compare_files(paths: Sequence[Path]) -> Comparison:
    """Pair the files' samples by strategy, budget and question; InputError when nothing pairs."""
    if len(paths) < 2:
        raise UsageError("bench compare needs two or more results files")
    files = [_load(p) for p in paths]
    first, others = files[0], files[1:]
    keys = [key for key in first.cells if all(key in f.cells for f in others)]
    if not keys:
        listing = "; ".join(f"{f.path.name}: {_cell_names(f)}" for f in files)
        raise InputError(f"no strategy and budget was run in every file ({listing})")
    notes = [note for f in files for note in f.notes]
    datasets = {Path(str(f.header.get("dataset"))).name for f in files if f.header.get("dataset")}
    if len(datasets) > 1:
        notes.append(f"the files ran different datasets ({', '.join(sorted(datasets))}); "
                     "questions are paired by id")  # fmt: skip
    notes += _same_name_other_weights(files)
    cells = []
    for key in keys:
        ids, changed = _shared_ids([f.cells[key] for f in files])
        label = f"{key[0]} {key[1]}"
        if changed:
            notes.append(f"{label}: left out {changed} question(s) whose text differs by file")
        dropped = max(len(f.cells[key]) for f in files) - len(ids) - changed
        if dropped:
            notes.append(f"{label}: left out {dropped} question(s) missing from some file")
        if ids:
            cells.append(_compare_cell(key, [[f.cells[key][q] for q in ids] for f in files]))
    if not cells:
        raise InputError("no question was run in every file")
    return Comparison(
        files=[str(p) for p in paths], labels=_labels(files), cells=cells, notes=notes
    )


def _load(path: Path) -> _File:
    records = read_records(path)
    samples, duplicates = unique_samples(records.items, path)
    if not samples:
        raise InputError(f"{path}: no bench samples in this file")
    header = next((r for r in records.items if r.get("type") == "run"), {})
    cells: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for s in samples:
        cells.setdefault((str(s["strategy"]), str(s["budget"])), {})[str(s["id"])] = s
    notes = [f"{path.name}: ignored {duplicates} repeated sample(s)"] if duplicates else []
    return _File(path, header, cells, notes)


def _same_name_other_weights(files: list[_File]) -> list[str]:
    """Files that name one model but sampled from different weights (a re-exported model keeps
    its name): their branches differ though the settings match, so say so."""
    digests: dict[str, set[str]] = {}
    for f in files:
        model_file = f.header.get("model_file") or {}
        if f.header.get("model") and model_file.get("sha256"):
            digests.setdefault(str(f.header["model"]), set()).add(str(model_file["sha256"]))
    return [
        f"the files name model {name!r} but ran {len(found)} different model files (SHA-256), "
        "so their branches are not the same draws"
        for name, found in digests.items()
        if len(found) > 1
    ]


def _cell_names(f: _File) -> str:
    return ", ".join(f"{s} {b}" for s, b in f.cells)


def _labels(files: list[_File]) -> list[str]:
    """Model names when they tell the files apart, else file names."""
    models = [str(f.header.get("model") or "") for f in files]
    if all(models) and len(set(models)) == len(models):
        return models
    names = [f.path.name for f in files]
    return names if len(set(names)) == len(names) else [str(f.path) for f in files]


def _shared_ids(cells: list[dict[str, dict[str, Any]]]) -> tuple[list[str], int]:
    """Question ids present in every file, in the first file's order; and how many of those were
    left out because the question's text digest differs between files."""
    shared = [q for q in cells[0] if all(q in c for c in cells[1:])]
    kept = []
    for q in shared:
        digests = {c[q].get("digest") for c in cells} - {None}
        if len(digests) <= 1:
            kept.append(q)
    return kept, len(shared) - len(kept)


def _compare_cell(key: tuple[str, str], samples: list[list[dict[str, Any]]]) -> CellComparison:
    questions = len(samples[0])
    n = min(len(s["labels"]) for file in samples for s in file)
    ks = subset_ks(n) if n >= 1 else []
    per_k = [
        {k: np.array([question_scores(s, k) for s in file], dtype=float) for k in ks}
        for file in samples
    ]  # file -> k -> (questions, 2): pass@k, maj@k
    scores: dict[str, list[np.ndarray]] = {
        ACCURACY: [np.array([bool(s["correct"]) for s in file], dtype=float) for file in samples]
    }
    if ks:
        scores["pass@1"] = [f[1][:, 0] for f in per_k]
        if n > 1:
            scores[f"maj@{n}"] = [f[n][:, 1] for f in per_k]
            scores[f"pass@{n}"] = [f[n][:, 0] for f in per_k]
            scores[gain_metric(n)] = [f[n][:, 1] - f[1][:, 0] for f in per_k]
    rows = []
    for metric, vectors in scores.items():
        values = [_wilson(v) if metric == ACCURACY else _bootstrap(v) for v in vectors]
        deltas = [None, *(_bootstrap(v - vectors[0]) for v in vectors[1:])]
        rows.append(MetricRow(metric, values, deltas))
    tokens = [float(np.mean([int(s["tokens"]) for s in file])) for file in samples]
    curves = [
        [
            CurvePoint(
                k=k,
                pass_at=_bootstrap(f[k][:, 0]),
                maj_at=_bootstrap(f[k][:, 1]),
                tokens=tok * k / n,
            )
            for k in ks
        ]
        for f, tok in zip(per_k, tokens, strict=True)
    ]
    return CellComparison(key[0], key[1], questions, n, tokens, rows, curves)


def _bootstrap(values: np.ndarray) -> Estimate:
    return Estimate(*bootstrap_mean(values))


def _wilson(correct: np.ndarray) -> Estimate:
    hits = int(correct.sum())
    low, high = wilson(hits, len(correct))
    return Estimate(hits / len(correct), low, high)
