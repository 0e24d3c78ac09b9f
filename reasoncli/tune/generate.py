"""The bench runs a tune needs, one results file per family, run by `reason bench`'s own runner
(so they resume like bench and can be read by `bench report` and `tune --from` alike).

The ladder: `vote` with N branches (every k <= N comes from its first k), greedy, `best-of-n`
with the verifier (maj@k, best-of-k and the weighted vote from the same branches), `dvts` and
`beam` at N = 4, 8, 16 when the verifier is a PRM, `think` at every budget of the ladder, and
`revise` at the per-branch cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reasoncli.bench.runner import BenchJob, BenchRequest, prepare_bench

__all__ = ["TuneRuns", "plan_runs"]


@dataclass(frozen=True)
class TuneRuns:
    data: str
    model: str | None
    out: Path  # a folder: one results file per family
    budgets: tuple[int, ...]
    branches: int = 16
    max_tokens: int = 128
    verifier: str | None = None
    seed: int = 0
    limit: int | None = None


def _request(runs: TuneRuns, name: str, **fields: object) -> BenchRequest:
    path = runs.out / f"{name}.jsonl"
    where = (
        {"resume": path}
        if path.exists() and path.stat().st_size
        else {"out": path, "data": runs.data, "limit": runs.limit}
    )
    common = {"model": runs.model, "max_tokens": runs.max_tokens, "seed": runs.seed}
    return BenchRequest(**common, **where, **fields)  # type: ignore[arg-type]


def plan_runs(runs: TuneRuns) -> list[BenchJob]:
    """Every job, checked before the model loads; a file already there is resumed."""
    n = runs.branches
    requests = [
        _request(runs, "vote", strategies=["vote"], branches=[n]),
        _request(runs, "greedy", strategies=["vote"], branches=[1], temperature=0.0),
        _request(runs, "think", strategies=["think"], budget_tokens=list(runs.budgets)),
        _request(runs, "revise", strategies=["revise"], branches=[1]),
    ]
    if runs.verifier:
        requests.append(
            _request(
                runs,
                "best-of-n",
                strategies=["best-of-n"],
                branches=[n],
                options={"verifier": runs.verifier},
            )
        )
    if runs.verifier and runs.verifier.startswith("prm:"):
        widths = [k for k in (4, 8, 16) if k <= n] or [n]
        requests.append(
            _request(
                runs,
                "search",
                strategies=["dvts", "beam"],
                branches=widths,
                options={"verifier": runs.verifier},
            )
        )
    return [prepare_bench(r) for r in requests]
