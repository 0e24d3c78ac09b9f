"""`reason rollouts`: GRPO groups (DeepSeek-R1, arXiv 2501.12948) written as they are sampled.

Each line is one question's group in TRL's vocabulary:

- `prompt`: the conversation (system + user messages) for chat models, or the rendered text
  prompt for completion-mode models, exactly what the branches were sampled from;
- `completions`: the G sampled texts, as `[{"role": "assistant", "content": ...}]` for chat
  prompts (what TRL passes reward functions) or plain strings;
- `rewards`: accuracy + 0.5 · format per completion (`reasoncli.rewards`), with each part in
  `reward_components`; `advantages`: (r - mean) / std within the group;
- `answer`: the expected answer, the column TRL's reward functions receive as a keyword.

Every line has the same fields, so `datasets.load_dataset("json", data_files=...)` reads the
file as is. GRPOTrainer samples its own completions and forwards extra columns to reward
functions, so drop `completions` (it would clash with TRL's own argument) to train on the
prompts online; keep everything for offline or off-policy use.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reasoncli import api
from reasoncli.bench.datasets import Dataset, Item, load_dataset
from reasoncli.bench.runner import BenchProgress, RunFlags
from reasoncli.bench.store import JsonlStore, read_records
from reasoncli.engine.protocols import ModelSession
from reasoncli.errors import InputError, UsageError
from reasoncli.prompting import COT_SYSTEM
from reasoncli.results import Result
from reasoncli.rewards import group_advantages, score_branch
from reasoncli.strategies.base import StrategyOptions, get_strategy

__all__ = ["RolloutJob", "RolloutRequest", "prepare_rollouts", "rollout_summary"]

GROUP_SETTINGS = ("branches", "max_tokens", "seed", "temperature")
"""How a file's groups were sampled: a resume must not change them (GRPO compares within one)."""

SAMPLER = "vote"  # plain independent sampling: GRPO needs samples from the policy itself


@dataclass
class RolloutRequest(RunFlags):
    """`reason bench rollouts`' flags."""

    data: str
    branches: int | None = None


@dataclass
class RolloutJob:
    dataset: Dataset
    out: Path
    branches: int
    max_tokens: int
    seed: int
    temperature: float | None
    model_arg: str | None
    resuming: bool = False
    saved_model: str | None = None
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: int = 0

    def settings(self) -> dict[str, Any]:
        """What each group line records: the model and the `GROUP_SETTINGS`."""
        return {"model_arg": self.model_arg, **{n: getattr(self, n) for n in GROUP_SETTINGS}}

    def run(self, session: ModelSession, progress: BenchProgress) -> int:
        """Sample and write each missing question's group; Ctrl-C propagates."""
        if self.saved_model is not None and self.saved_model != session.name:
            raise UsageError(
                f"{self.out} holds rollouts of {self.saved_model!r}, not {session.name!r}"
            )
        options = StrategyOptions(
            branches=self.branches, max_tokens=self.max_tokens, seed=self.seed
        )
        sampling = None if self.temperature is None else {"temperature": self.temperature}
        todo = [item for item in self.dataset.items if item.id not in self.done]
        store = JsonlStore.reopen(self.out) if self.resuming else JsonlStore.create(self.out)
        with store:
            ids = {item.id for item in self.dataset.items}
            progress.start(len(ids), [r for i, r in self.done.items() if i in ids])
            try:
                for item in todo:
                    options = replace(options, multiple_choice=item.multiple_choice)
                    started = time.perf_counter()
                    result = api.run(item.question, session, SAMPLER, options, sampling=sampling)
                    if result.interrupted:
                        raise KeyboardInterrupt
                    record = group_record(item, result, session, self.settings())
                    record["rollout"]["wall_s"] = round(time.perf_counter() - started, 4)
                    store.append(record)  # a Ctrl-C held while it writes is raised after
                    progress.advance(record)
            finally:
                self.written = store.written  # the groups this invocation wrote
        return self.written


def group_record(
    item: Item, result: Result, session: ModelSession, settings: dict[str, Any]
) -> dict[str, Any]:
    """One question's GRPO group in TRL's field names (see the module docstring)."""
    rewards = [
        score_branch(b.text, b.answer, b.finish_reason, item.expected, session.think_tags)
        for b in result.branches
    ]
    totals = [r.total for r in rewards]
    style = session.style  # None: a remote model prompted through its server's chat API
    chat = style is None or (style.mode == "chat" and bool(style.chat_template))
    prompt: Any = (
        [{"role": "system", "content": COT_SYSTEM}, {"role": "user", "content": item.question}]
        if chat
        else session.prompt_text(item.question)
    )
    texts = [b.text for b in result.branches]
    return {
        "id": item.id,
        "prompt": prompt,
        "completions": [[{"role": "assistant", "content": t}] for t in texts] if chat else texts,
        "rewards": totals,
        "advantages": [round(a, 6) for a in group_advantages(totals)],
        "answer": item.expected,
        "predictions": [b.answer for b in result.branches],
        "reward_components": {
            "accuracy": [r.accuracy for r in rewards],
            "format": [r.format for r in rewards],
            "stop": [r.stop for r in rewards],
        },
        "tokens": [b.tokens for b in result.branches],
        "finish_reasons": [b.finish_reason for b in result.branches],
        "rollout": {"model": session.name, **settings},
    }


def prepare_rollouts(request: RolloutRequest) -> RolloutJob:
    """Validate flags and data; on resume, keep the file's group settings."""
    if request.resume and request.out:
        raise UsageError("--resume already names the output file; drop --out")
    out = request.resume or request.out
    if out is None:
        raise UsageError("--out FILE is required (or --resume FILE to continue one)")
    given = {name: getattr(request, name) for name in GROUP_SETTINGS}
    saved: dict[str, Any] = {}
    done: dict[str, dict[str, Any]] = {}
    if request.resume:
        records = read_records(request.resume).items
        for record in records:
            if "id" not in record or not isinstance(record.get("rollout"), dict):
                raise InputError(f"{request.resume}:{record['_line']}: not a rollout group")
            done.setdefault(str(record["id"]), record)
        saved = records[0]["rollout"] if records else {}
        for name, value in given.items():
            if value is not None and name in saved and saved[name] != value:
                flag = "--" + name.replace("_", "-")
                raise UsageError(
                    f"{flag} {value} differs from {saved[name]} in {request.resume}; "
                    "a GRPO file needs one setting throughout"
                )
    else:
        JsonlStore.refuse_existing(out)

    def pick(name: str, default: Any) -> Any:
        value = given[name] if given[name] is not None else saved.get(name)
        return default if value is None and name != "temperature" else value

    job = RolloutJob(
        dataset=load_dataset(request.data, limit=request.limit),
        out=out,
        branches=pick("branches", 8),
        max_tokens=pick("max_tokens", 512),
        seed=pick("seed", 0),
        temperature=pick("temperature", None),
        model_arg=request.model_arg(saved.get("model_arg")),
        resuming=request.resume is not None,
        saved_model=saved.get("model"),
        done=done,
    )
    if job.branches < 2:
        raise UsageError("--branches must be at least 2: GRPO compares branches within a group")
    get_strategy(SAMPLER).check(
        StrategyOptions(branches=job.branches, max_tokens=job.max_tokens, seed=job.seed)
    )
    return job


def rollout_summary(path: Path) -> dict[str, Any]:
    """What a trainer wants to know first: groups, mean accuracy, groups with any signal."""
    records = read_records(path).items
    accuracy = [a for r in records for a in r["reward_components"]["accuracy"]]
    signal = sum(1 for r in records if any(abs(a) > 1e-12 for a in r["advantages"]))
    return {
        "file": str(path),
        "groups": len(records),
        "completions": len(accuracy),
        "mean_accuracy": math.fsum(accuracy) / len(accuracy) if accuracy else 0.0,
        "groups_with_signal": signal,
    }
