"""How hard a question is, from what `auto` sees after its pilot, and how well that predicts.

The estimate must be computable at run time, so it reads only the pilot branches: their answers
(agreement, as Snell et al. use), their lengths, and, when the policy scores its pilots with a
verifier, their scores (the verifier's view of how likely a pilot is right). Both `reason tune`
(offline, from the first p branches of a saved run) and `auto` (live, from its pilots) call
`estimate`, so a question falls into the same bin in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reasoncli.tune.policy import SCORED_ESTIMATES
from reasoncli.voting import majority_vote

__all__ = ["ESTIMATES", "SCORED", "Pilot", "auc", "estimate"]


@dataclass(frozen=True)
class Pilot:
    """The pilot branches of one question: answers (None: no answer), generated tokens, the
    per-branch cap they ran under, and their verifier scores when the pilots were scored."""

    answers: Sequence[str | None]
    tokens: Sequence[int]
    max_tokens: int
    scores: Sequence[float | None] | None = None

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


def _scores(p: Pilot) -> list[float]:
    if p.scores is None:
        raise ValueError("this difficulty estimate needs the pilots' verifier scores")
    return [s if s is not None and math.isfinite(s) else 0.0 for s in p.scores]


def _verifier_best(p: Pilot) -> float:
    """1 - the best score of a pilot that answered: no pilot the verifier believes is hard."""
    scores = _scores(p)
    answered = [s for s, a in zip(scores, p.answers, strict=True) if a is not None]
    return 1.0 - max(answered, default=0.0)


def _verifier_share(p: Pilot) -> float:
    """1 - the leading answer's share of the score-weighted vote (what `--pick weighted`
    answers with): well-scored pilots that agree mean easy."""
    vote = majority_vote(list(p.answers), _scores(p))
    total = math.fsum(g.weight for g in vote.groups)
    if vote.answer is None or total <= 0:
        return 1.0
    return 1.0 - vote.groups[0].weight / total


def _disagreement_then_length(p: Pilot) -> float:
    # Agreement moves in steps of 1/n; the length term stays below one step, so it only orders
    # questions with the same agreement (finer quantile bins without overriding agreement).
    n = max(1, len(p.answers))
    return 1.0 - p.agreement + min(p.length, 1.0) / (n + 1)


ESTIMATES: dict[str, Callable[[Pilot], float]] = {
    "disagreement": _disagreement,
    "length": _length,
    "disagreement+length": _disagreement_then_length,
    "verifier-best": _verifier_best,
    "verifier-share": _verifier_share,
}
"""Difficulty estimates by name (higher is harder); models.yaml policies name one."""

SCORED = frozenset(SCORED_ESTIMATES)
"""Estimates that read verifier scores: a policy using one scores its pilots (and pays for it)."""


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
