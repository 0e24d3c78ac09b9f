"""What a k-branch run would have answered, from the first k branches of a saved N-branch run.

Branch i of `vote`/`best-of-n` is sampled with seed + i, and a branch's tokens do not depend
on the other branches in the batch, so the first k branches of an N-branch run are exactly the
branches of the k-branch run. What differs is only the aggregation, and that is done here by
the tool's own code (`voting.majority_vote`, `best_of_n.best_of_n_vote`) over the branches in
the order the k-branch run would have finished them. That order matters: a vote's tie goes to
the answer whose branch finished first.

A run decodes all its branches in lockstep, one token per step, so a branch that wrote t
tokens finishes at step t, or t + 1 when it ended on an end-of-generation token (sampled, not
counted); branches finishing in the same step are recorded in branch order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from reasoncli.answers import normalize_answer
from reasoncli.voting import VoteResult, majority_vote

__all__ = ["PICKS", "finish_order", "first_k_pick", "pick_is_right"]

PICKS = ("maj", "best", "weighted")
"""maj: `vote -n k`; best: `best-of-n -n k`; weighted: `best-of-n -n k --pick weighted`."""


def finish_order(tokens: Sequence[int], reasons: Sequence[str | None]) -> list[int]:
    """Branch ids in the order a run of exactly these branches records them as finished."""
    steps = [t + (reason == "eos") for t, reason in zip(tokens, reasons, strict=True)]
    return sorted(range(len(steps)), key=lambda i: (steps[i], i))


def _vote(answers: list[str | None], scores: list[float], how: str) -> VoteResult:
    from reasoncli.strategies.best_of_n import best_of_n_vote

    aggregate = {
        "maj": lambda: majority_vote(answers),
        "weighted": lambda: majority_vote(answers, scores),
        "best": lambda: best_of_n_vote(answers, scores),
    }
    return aggregate[how]()


def first_k_pick(
    record: dict[str, Any], k: int, how: str = "maj", order: Sequence[int] | None = None
) -> tuple[str | None, list[int]]:
    """The answer a k-branch run of `record`'s strategy would give, and the branch ids it was
    taken over in their finish order. `how` is one of PICKS (best and weighted need scores).
    `order` overrides the finish order (`auto` widening its pilots finishes them first)."""
    if how not in PICKS:
        raise ValueError(f"unknown pick {how!r}; choose one of {', '.join(PICKS)}")
    ids = (
        list(order)
        if order is not None
        else finish_order(record["branch_tokens"][:k], record["finish_reasons"][:k])
    )
    answers = [record["answers"][i] for i in ids]
    raw = record.get("scores") or [None] * len(record["answers"])
    scores = [math.nan if raw[i] is None else float(raw[i]) for i in ids]
    return _vote(answers, scores, how).answer, ids


def pick_is_right(
    record: dict[str, Any], k: int, how: str = "maj", order: Sequence[int] | None = None
) -> bool:
    """Whether `first_k_pick` is right, by the grade the bench gave that answer's group."""
    answer, ids = first_k_pick(record, k, how, order)
    if answer is None:
        return False
    key = normalize_answer(answer)
    for i in ids:
        given = record["answers"][i]
        label = record["labels"][i]
        if given is not None and label is not None and normalize_answer(given) == key:
            return bool(record["groups"][label]["correct"])
    return False
