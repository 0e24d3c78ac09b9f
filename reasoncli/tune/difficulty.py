"""How hard a question is, from what `auto` sees after its pilot, and how well that predicts.

The estimate must be computable at run time, so it reads only the pilot branches: their answers
(agreement, as Snell et al. use) and their lengths. Both `reason tune` (offline, from the first
p branches of a saved run) and `auto` (live, from its pilots) call `estimate`, so a question
falls into the same bin in both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reasoncli.voting import majority_vote

__all__ = ["ESTIMATES", "Pilot", "auc", "estimate"]


@dataclass(frozen=True)
class Pilot:
    """The pilot branches of one question: answers (None: no answer), generated tokens, and
    the per-branch cap they ran under."""

    answers: Sequence[str | None]
    tokens: Sequence[int]
    max_tokens: int

    @property
    def agreement(self) -> float:
        """The leading answer's count over all pilots (a pilot with no answer agrees with
        nothing), as `auto`'s constants read it."""
        vote = majority_vote(list(self.answers))
        top = vote.groups[0].count if vote.groups else 0
        return top / len(self.answers) if self.answers else 0.0

    @property
    def length(self) -> float:
        """Mean pilot length as a share of the cap: long or cut-off answers mean trouble."""
        if not self.tokens:
            return 1.0
        return float(np.mean(self.tokens)) / max(1, self.max_tokens)


def _disagreement(p: Pilot) -> float:
    return 1.0 - p.agreement


def _length(p: Pilot) -> float:
    return p.length


def _disagreement_then_length(p: Pilot) -> float:
    # Agreement moves in steps of 1/n; the length term stays below one step, so it only orders
    # questions with the same agreement (finer quantile bins without overriding agreement).
    n = max(1, len(p.answers))
    return 1.0 - p.agreement + min(p.length, 1.0) / (n + 1)


ESTIMATES: dict[str, Callable[[Pilot], float]] = {
    "disagreement": _disagreement,
    "length": _length,
    "disagreement+length": _disagreement_then_length,
}
"""Difficulty estimates by name (higher is harder); models.yaml policies name one."""


def estimate(name: str, pilot: Pilot) -> float:
    return ESTIMATES[name](pilot)


def auc(difficulty: Sequence[float], hard: Sequence[bool]) -> float | None:
    """P(a random hard question is estimated harder than a random easy one), ties half.

    None when one side is empty (nothing to rank)."""
    d = np.asarray(difficulty, dtype=float)
    h = np.asarray(hard, dtype=bool)
    pos, neg = d[h], d[~h]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
