"""The one way a strategy's `Result` is made.

What a run produced is added to a `ResultBuilder` as it is known: branches, and what each engine
cost (prompt tokens, seconds, decode calls). `build` then makes the `Result` once, with the
answer, its vote and the GRPO rewards when an answer is expected; nothing changes a result after
it is built. `ParallelRun`, `SearchRun` and `revise` build theirs this way, and `auto`, which
runs phases of each, adds every phase to one builder of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import astuple, dataclass, field
from typing import Any

from reasoncli.engine.protocols import ModelSession
from reasoncli.results import BranchResult, Result, Timings, VoteGroup
from reasoncli.rewards import group_advantages, score_branch
from reasoncli.voting import VoteResult

__all__ = ["Cost", "ResultBuilder", "attach_rewards", "vote_groups"]


@dataclass(frozen=True)
class Cost:
    """What decoding cost one engine (or several, summed)."""

    prompt_tokens: int = 0
    prompt_s: float = 0.0
    generate_s: float = 0.0
    prompt_tokens_decoded: int = 0
    decode_calls: int = 0

    @classmethod
    def of(cls, result: Result) -> Cost:
        """A finished run's cost, when its branches join another run's result (auto)."""
        t = result.timings
        return cls(
            result.prompt_tokens, t.prompt_s, t.generate_s, t.prompt_tokens_decoded, t.decode_calls
        )

    def __add__(self, other: Cost) -> Cost:
        """The cost of both, field by field."""
        return Cost(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


def vote_groups(vote: VoteResult, members: Sequence[int]) -> list[VoteGroup]:
    """The vote's groups with branch ids: the vote counted `members[i]` as its voter i."""
    return [
        VoteGroup(g.answer, g.count, g.weight, [members[m] for m in g.members]) for g in vote.groups
    ]


def attach_rewards(
    branches: Sequence[BranchResult],
    expect: str,
    finish_reason: Callable[[BranchResult], str] = lambda b: b.finish_reason,
    think_tags: tuple[str, str] | None = None,
) -> None:
    """GRPO rewards per branch and the group-relative advantage over all of them.

    `finish_reason` lets a strategy say which of its own endings count as stopping on its own;
    `think_tags` (the session's) hold a thinking model to the thinking format.
    """
    rewards = [
        score_branch(b.text, b.answer, finish_reason(b), expect, think_tags) for b in branches
    ]
    advantages = group_advantages([r.total for r in rewards])
    for b, r, a in zip(branches, rewards, advantages, strict=True):
        b.reward = {
            "accuracy": r.accuracy,
            "format": r.format,
            "stop": r.stop,
            "total": r.total,
            "advantage": a,
        }


@dataclass
class ResultBuilder:
    """A run's branches and costs so far; `build` makes its `Result`."""

    strategy: str
    question: str
    session: ModelSession
    started: float = field(default_factory=time.perf_counter)
    branches: list[BranchResult] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)

    def add(self, branches: Sequence[BranchResult], cost: Cost | None = None) -> None:
        self.branches.extend(branches)
        if cost is not None:
            self.cost += cost

    def build(
        self,
        answer: str | None,
        share: float,
        votes: list[VoteGroup],
        *,
        expect: str | None = None,
        rewarded: Collection[int] | None = None,
        finish_reason: Callable[[BranchResult], str] | None = None,
        labels: Mapping[int, str] | None = None,
        interrupted: bool = False,
        stop_reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Result:
        """The result. With `expect`, the branches in `rewarded` (default: all) get GRPO
        rewards, judged by `finish_reason`; `labels` name the branches that have no label."""
        for b in self.branches:
            if labels and not b.label:
                b.label = labels.get(b.id, "")
        if expect is not None:
            scored = [b for b in self.branches if rewarded is None or b.id in rewarded]
            how = {"finish_reason": finish_reason} if finish_reason else {}
            attach_rewards(scored, expect, think_tags=self.session.think_tags, **how)
        c = self.cost
        return Result(
            question=self.question,
            strategy=self.strategy,
            model=self.session.name,
            answer=answer,
            share=share,
            votes=votes,
            branches=list(self.branches),
            prompt_tokens=c.prompt_tokens,
            generated_tokens=sum(b.tokens for b in self.branches),
            timings=Timings(
                load_s=self.session.load_s,
                prompt_s=c.prompt_s,
                generate_s=c.generate_s,
                total_s=time.perf_counter() - self.started,
                prompt_tokens_decoded=c.prompt_tokens_decoded,
                decode_calls=c.decode_calls,
            ),
            interrupted=interrupted,
            stop_reason=stop_reason,
            details=details or {},
            backend=self.session.backend_info(),
        )
