"""Turn a run into history rows and rows back into a `Result`, so `reason logs show` renders a
stored run with the same summary and JSON the run itself printed."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from reasoncli.results import BranchResult, Result, Timings, VoteGroup


@dataclass(frozen=True)
class RunSummary:
    """One line of `reason logs list`."""

    id: int
    created_at: str
    source: str
    question: str
    model: str
    strategy: str
    answer: str | None
    share: float
    status: int
    interrupted: bool
    generated_tokens: int
    total_s: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunRecord:
    """A stored run: where and how it ran, and its result (None when it failed before one)."""

    summary: RunSummary
    options: dict[str, Any]
    error: str | None
    result: Result | None

    @property
    def id(self) -> int:
        return self.summary.id

    def to_json(self) -> dict[str, Any]:
        """The summary fields, the options, and `result` exactly as `--json` printed it."""
        return {
            **self.summary.to_json(),
            "options": self.options,
            "error": self.error,
            "result": self.result.to_json() if self.result is not None else None,
        }


def run_rows(
    *,
    question: str,
    model: str,
    strategy: str,
    options: Any,
    result: Result | None,
    status: int,
    interrupted: bool,
    error: str | None,
    source: str,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(run, branches, votes) rows for `HistoryStore.insert_run`."""
    run: dict[str, Any] = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "source": source,
        "question": question,
        "model": model,
        "strategy": strategy,
        "options": _dumps(options_dict(options)),
        "status": int(status),
        "interrupted": int(interrupted),
        "error": error,
        "has_result": int(result is not None),
    }
    if result is None:
        return run, [], []
    t = result.timings
    run.update(
        question=result.question,
        model=result.model,
        strategy=result.strategy,
        answer=result.answer,
        share=result.share,
        prompt_tokens=result.prompt_tokens,
        generated_tokens=result.generated_tokens,
        load_s=t.load_s,
        prompt_s=t.prompt_s,
        generate_s=t.generate_s,
        total_s=t.total_s,
        prompt_tokens_decoded=t.prompt_tokens_decoded,
        decode_calls=t.decode_calls,
        stop_reason=result.stop_reason,
        details=_dumps(result.details),
        backend=_dumps(result.backend),
    )
    branches = [_branch_row(i, b) for i, b in enumerate(result.branches)]
    votes = [
        {
            "position": i,
            "answer": g.answer,
            "count": g.count,
            "weight": g.weight,
            "members": _dumps(g.members),
        }
        for i, g in enumerate(result.votes)
    ]
    return run, branches, votes


def options_dict(options: Any) -> dict[str, Any]:
    """StrategyOptions (or any dataclass or mapping) as plain JSON-able values."""
    if options is None:
        return {}
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return dataclasses.asdict(options)
    if isinstance(options, dict):
        return dict(options)
    return dict(vars(options))


def summary_from_row(run: dict[str, Any]) -> RunSummary:
    """Each field is the `runs` column of its name; SQLite keeps `interrupted` as 0/1."""
    values = {f.name: run[f.name] for f in dataclasses.fields(RunSummary)}
    return RunSummary(**{**values, "interrupted": bool(run["interrupted"])})


def record_from_rows(
    run: dict[str, Any], branches: list[dict[str, Any]], votes: list[dict[str, Any]]
) -> RunRecord:
    result = None
    if run["has_result"]:
        result = Result(
            question=run["question"],
            strategy=run["strategy"],
            model=run["model"],
            answer=run["answer"],
            share=run["share"],
            votes=[
                VoteGroup(v["answer"], v["count"], v["weight"], json.loads(v["members"]))
                for v in votes
            ],
            branches=[_branch(b) for b in branches],
            prompt_tokens=run["prompt_tokens"],
            generated_tokens=run["generated_tokens"],
            timings=Timings(
                run["load_s"],
                run["prompt_s"],
                run["generate_s"],
                run["total_s"],
                prompt_tokens_decoded=run["prompt_tokens_decoded"],
                decode_calls=run["decode_calls"],
            ),
            interrupted=bool(run["interrupted"]),
            stop_reason=run["stop_reason"],
            details=json.loads(run["details"]),
            backend=json.loads(run["backend"]),
        )
    return RunRecord(summary_from_row(run), json.loads(run["options"]), run["error"], result)


def _branch_row(position: int, b: BranchResult) -> dict[str, Any]:
    return {
        "position": position,
        "branch_id": b.id,
        "parent": b.parent,
        "label": b.label,
        "text": b.text,
        "thinking": b.thinking,
        "answer": b.answer,
        "tokens": b.tokens,
        "forced_tokens": b.forced_tokens,
        "finish_reason": b.finish_reason,
        "confidence": b.confidence,
        "score": b.score,
        "reward": None if b.reward is None else _dumps(b.reward),
        "error": b.error,
    }


def _branch(row: dict[str, Any]) -> BranchResult:
    return BranchResult(
        id=row["branch_id"],
        text=row["text"],
        answer=row["answer"],
        tokens=row["tokens"],
        finish_reason=row["finish_reason"],
        parent=row["parent"],
        thinking=row["thinking"],
        forced_tokens=row["forced_tokens"],
        confidence=row["confidence"],
        score=row["score"],
        reward=None if row["reward"] is None else json.loads(row["reward"]),
        label=row["label"],
        error=row["error"],
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
