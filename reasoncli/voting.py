"""Votes over branch answers: plain majority, weighted (e.g. by DeepConf confidence), top-k filters.

Answers are grouped by mathematical equivalence (`answers.group_answers`), so "0.5" and "1/2"
pool their votes. Results are deterministic: ties never depend on dict or set ordering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from reasoncli.answers import group_answers

__all__ = ["GroupTally", "VoteResult", "majority_vote", "top_fraction"]


@dataclass
class GroupTally:
    """One distinct answer: how many branches gave it and their summed weight."""

    answer: str
    count: int
    weight: float
    members: list[int] = field(default_factory=list)


@dataclass
class VoteResult:
    """The outcome of a vote.

    `share` is the winner's weight over the weight of all branches that produced an answer
    (0.0 when there is none); `total` counts every branch, `valid` only those with an answer.
    """

    answer: str | None
    share: float
    groups: list[GroupTally]
    total: int
    valid: int


def _clean_weight(weight: float) -> float:
    """NaN, negative or infinite weights carry no vote rather than poisoning the sums."""
    return weight if math.isfinite(weight) and weight > 0 else 0.0


def majority_vote(
    answers: Sequence[str | None], weights: Sequence[float] | None = None
) -> VoteResult:
    """Pick the answer with the most weight (each branch weighs 1 by default).

    Ties go to the larger count, then to the answer seen first. Branches without an answer
    count towards `total` only.
    """
    if weights is not None and len(weights) != len(answers):
        raise ValueError(f"{len(weights)} weights given for {len(answers)} answers")
    clean = [1.0] * len(answers) if weights is None else [_clean_weight(w) for w in weights]
    tallies = [
        GroupTally(
            answer=group.answer,
            count=len(group.members),
            weight=math.fsum(clean[i] for i in group.members),
            members=list(group.members),
        )
        for group in group_answers(answers)
    ]
    # group_answers yields first-appearance order and sort is stable, so equal keys keep it.
    tallies.sort(key=lambda t: (-t.weight, -t.count))
    valid = sum(t.count for t in tallies)
    total_weight = math.fsum(t.weight for t in tallies)
    winner = tallies[0] if tallies else None
    share = winner.weight / total_weight if winner and total_weight > 0 else 0.0
    return VoteResult(
        answer=winner.answer if winner else None,
        share=share,
        groups=tallies,
        total=len(answers),
        valid=valid,
    )


def top_fraction(scores: Sequence[float], fraction: float) -> list[int]:
    """Indices of the best `ceil(fraction * n)` scores (at least one), best first.

    DeepConf keeps only the most confident traces (e.g. the top 10%) before voting. NaN scores
    rank last; equal scores keep index order.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not scores:
        return []
    # Subtract a hair so that 0.1 * 30 = 3.0000000000000004 keeps 3, not 4.
    keep = min(len(scores), max(1, math.ceil(fraction * len(scores) - 1e-9)))
    order = sorted(
        range(len(scores)),
        key=lambda i: (math.isnan(scores[i]), -scores[i] if not math.isnan(scores[i]) else 0.0),
    )
    return order[:keep]
