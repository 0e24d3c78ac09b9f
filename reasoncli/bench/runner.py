"""The bench loop: every question × strategy × budget once, each result saved as it finishes.

The results file holds three kinds of lines:

- `run`: written by each invocation (the first one is the run's definition: data, model, plan);
- `sample`: one graded result, keyed by (question id, strategy, budget);
- `end`: the invocation's wall time, so the report can give the bench's own overhead.

Questions are the outer loop, so an interrupted run leaves every budget with about the same
questions, and `--resume` runs exactly the keys that are missing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from reasoncli import api
from reasoncli.bench.datasets import Dataset, Item, load_dataset
from reasoncli.bench.grading import grade
from reasoncli.bench.plan import JUDGE_OPTIONS, BenchPlan, Budget, budget_grid
from reasoncli.bench.store import JsonlStore, read_records
from reasoncli.engine.protocols import ModelSession
from reasoncli.errors import InputError, UsageError
from reasoncli.options import DEFAULT_MAX_TOKENS
from reasoncli.strategies.base import Strategy, get_strategy

__all__ = [
    "BenchJob",
    "BenchProgress",
    "BenchRequest",
    "RunFlags",
    "prepare_bench",
    "remembered_model",
    "sample_key",
]

FORMAT_VERSION = 1
Key = tuple[str, str, str]


def sample_key(record: dict[str, Any]) -> Key:
    return (str(record["id"]), str(record["strategy"]), str(record["budget"]))


class BenchProgress(Protocol):
    def start(self, total: int, done: list[dict[str, Any]]) -> None: ...

    def advance(self, record: dict[str, Any]) -> None: ...


@dataclass(kw_only=True)
class RunFlags:
    """The flags every results-file command takes (`bench run`, `bench rollouts`); None means
    "not given", so a resumed file keeps its own value."""

    max_tokens: int | None = None
    seed: int | None = None
    temperature: float | None = None
    limit: int | None = None
    model: str | None = None
    out: Path | None = None
    resume: Path | None = None

    def model_arg(self, saved: str | None = None) -> str | None:
        """--model as a resume will find it, else the one the file was started with."""
        return remembered_model(self.model) if self.model is not None else saved


@dataclass
class BenchRequest(RunFlags):
    """`reason bench run`'s flags."""

    data: str | None = None
    strategies: list[str] | None = None
    branches: list[int] | None = None
    budget_tokens: list[int] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # JUDGE_OPTIONS, by field name


@dataclass
class BenchJob:
    plan: BenchPlan
    dataset: Dataset
    out: Path
    limit: int | None
    model_arg: str | None
    header: dict[str, Any] | None = None  # the first `run` line of a resumed file
    done: dict[Key, dict[str, Any]] = field(default_factory=dict)
    written: int = 0

    @property
    def resuming(self) -> bool:
        return self.header is not None

    def check_model(self, session: ModelSession) -> None:
        if self.header and self.header.get("model") != session.name:
            raise UsageError(
                f"{self.out} was run with model {self.header.get('model')!r}, not "
                f"{session.name!r}; pass the same --model to resume it"
            )

    def pending(self) -> Iterator[tuple[Item, str, Budget]]:
        labels = {b: b.label for b in self.plan.budgets}
        for item in self.dataset.items:
            for strategy, budget in self.plan.cells():
                if (item.id, strategy, labels[budget]) not in self.done:
                    yield item, strategy, budget

    def in_scope(self) -> list[dict[str, Any]]:
        """Saved samples that belong to this plan and data (for the progress bar)."""
        ids = {i.id for i in self.dataset.items}
        cells = {(s, b.label) for s, b in self.plan.cells()}
        return [r for k, r in self.done.items() if k[0] in ids and (k[1], k[2]) in cells]

    def run(self, session: ModelSession, progress: BenchProgress) -> int:
        """Run what is missing; returns the number of samples written. Ctrl-C propagates."""
        self.check_model(session)
        todo = list(self.pending())
        strategies: dict[str, Strategy] = {s: get_strategy(s) for s in self.plan.strategies}
        for strategy in strategies.values():
            session.check_strategy(strategy.info)
        store = JsonlStore.reopen(self.out) if self.resuming else JsonlStore.create(self.out)
        started = time.perf_counter()
        interrupted = True
        with store:
            store.append(self._run_line(session))
            try:
                done = self.in_scope()
                progress.start(len(todo) + len(done), done)
                for item, name, budget in todo:
                    record = self._sample(item, name, budget, strategies[name], session)
                    store.append(record)  # a Ctrl-C held while it writes is raised after
                    progress.advance(record)
                interrupted = False
            finally:
                self.written = store.written - 1  # the samples after this invocation's run line
                wall = time.perf_counter() - started
                end = {"type": "end", "samples": self.written, "wall_s": round(wall, 4)}
                store.append({**end, "interrupted": interrupted})
        return self.written

    def _run_line(self, session: ModelSession) -> dict[str, Any]:
        return {
            "type": "run",
            "version": FORMAT_VERSION,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resumed": self.resuming,
            "dataset": str(self.dataset.path),
            "format": self.dataset.format,
            "limit": self.limit,
            "questions": len(self.dataset.items),
            "model": session.name,
            "model_arg": self.model_arg,
            "model_file": _model_file(session),
            "sampling": asdict(session.sampling),
            "load_s": round(session.load_s, 4),
            **self.plan.to_json(),
        }

    def _sample(
        self, item: Item, name: str, budget: Budget, strategy: Strategy, session: ModelSession
    ) -> dict[str, Any]:
        options = self.plan.options(name, budget, multiple_choice=item.multiple_choice)
        temperature = self.plan.temperature
        sampling = None if temperature is None else {"temperature": temperature}
        started = time.perf_counter()
        result = api.run(item.question, session, strategy, options, sampling=sampling)
        if result.interrupted:  # the strategy caught Ctrl-C: its partial result is not saved
            raise KeyboardInterrupt
        graded_at = time.perf_counter()
        graded = grade(result, item.expected)
        finished = time.perf_counter()
        record: dict[str, Any] = {
            "type": "sample",
            "id": item.id,
            "line": item.line,
            "digest": item.digest,
            "strategy": name,
            "budget": budget.label,
            "branches": options.branches,
            "budget_tokens": budget.tokens,
            "max_tokens": options.max_tokens,
            "expected": item.expected,
            "answer": result.answer,
            "share": round(result.share, 4),
            **graded.to_json(),
            "branch_tokens": [b.tokens for b in result.branches],
            "finish_reasons": [b.finish_reason for b in result.branches],
            "prompt_tokens": result.prompt_tokens,
            "tokens": result.generated_tokens,
            # what a judge read (best-of-n, beam, dvts); 0 when nothing but the policy ran
            "verifier_tokens": int(result.details.get("verifier_tokens", 0)),
            "gen_s": round(result.timings.prompt_s + result.timings.generate_s, 4),
            "grade_s": round(finished - graded_at, 4),
            "wall_s": round(finished - started, 4),
            "stop_reason": result.stop_reason,
        }
        if "scores" in result.details:  # verifier scores per branch (best-of-n)
            record["scores"] = result.details["scores"]
        for key in ("verifier_branch_tokens", "verifier_prompt_tokens"):  # what the judge read
            if key in result.details:
                record[key] = result.details[key]
        record["texts"] = [b.text for b in result.branches]  # every strategy: re-gradable later
        return record


def _model_file(session: ModelSession) -> dict[str, Any] | None:
    """The weights a run sampled from, by content: two runs of one configuration that drew
    different branches can then be told apart by a re-exported model (same name, new file)."""
    path = session.weights_path()
    if path is None:  # a remote server: its weights are not ours to read
        return None
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def prepare_bench(request: BenchRequest) -> BenchJob:
    """Check everything that can be checked before the model loads (data, plan, resume)."""
    if request.resume and request.out:
        raise UsageError("--resume already names the results file; drop --out")
    if request.resume:
        return _prepare_resume(request, request.resume)
    if request.data is None:
        raise UsageError("missing DATA: a JSONL file of questions (or --resume FILE)")
    plan = BenchPlan(
        strategies=request.strategies or ["vote"],
        budgets=budget_grid(request.branches, request.budget_tokens),
        max_tokens=DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens,
        max_tokens_explicit=request.max_tokens is not None,
        seed=request.seed or 0,
        temperature=request.temperature,
        given=_given_judge(request),
    )
    plan.check()
    dataset = load_dataset(request.data, limit=request.limit)
    out = request.out or Path("results") / f"run-{datetime.now():%Y-%m-%d-%H%M%S}.jsonl"
    JsonlStore.refuse_existing(out)
    return BenchJob(plan, dataset, out, request.limit, request.model_arg())


def _given_judge(request: BenchRequest) -> dict[str, Any]:
    """The JUDGE_OPTIONS flags the user gave (the others keep the plan's defaults)."""
    unknown = sorted(set(request.options) - set(JUDGE_OPTIONS))
    if unknown:
        raise UsageError(f"a bench takes {', '.join(JUDGE_OPTIONS)}, not {unknown[0]!r}")
    return {name: value for name, value in request.options.items() if value is not None}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def remembered_model(model: str | None) -> str | None:
    """A model file is remembered by absolute path, so a resume from elsewhere finds it."""
    if model is not None and Path(model).expanduser().is_file():
        return str(Path(model).expanduser().resolve())
    return model


def _prepare_resume(request: BenchRequest, path: Path) -> BenchJob:
    records = read_records(path)
    header = records.run_header()
    try:
        saved = BenchPlan.from_json(header)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}:{header['_line']}: bad 'run' line ({exc})") from None
    for flag, given, kept in (
        ("--max-tokens", request.max_tokens, saved.max_tokens),
        ("--seed", request.seed, saved.seed),
        ("--temperature", request.temperature, saved.temperature),
        *((_flag(n), v, saved.judge()[n]) for n, v in _given_judge(request).items()),
    ):
        if given is not None and given != kept:
            raise UsageError(
                f"{flag} {given} differs from {kept}, which {path} was started with; "
                "results would not be comparable"
            )
    plan = replace(
        saved,
        strategies=request.strategies or saved.strategies,
        budgets=(
            budget_grid(request.branches, request.budget_tokens)
            if request.branches or request.budget_tokens
            else saved.budgets
        ),
    )
    plan.check()
    limit = request.limit if request.limit is not None else header.get("limit")
    dataset = load_dataset(request.data or header["dataset"], limit=limit)
    model = request.model_arg(header.get("model_arg"))
    job = BenchJob(plan, dataset, path, limit, model, header=header)
    digests = {item.id: item for item in dataset.items}
    for record in records.items:
        if record.get("type") != "sample":
            continue
        key = sample_key(record)
        item = digests.get(key[0])
        if item is not None and record.get("digest") != item.digest:
            raise InputError(
                f"{path}:{record['_line']}: question {key[0]!r} differs from line {item.line} "
                f"of {dataset.path}: the data changed since this run started"
            )
        job.done.setdefault(key, record)
    return job
