"""Early stopping for votes: stop sampling branches once more samples would not change the answer.

Two published rules, both engine-independent and cheap to evaluate after every branch:

- ESC (Li et al. 2024, arXiv 2401.10480): stop when the last `window` answers all agree.
- Adaptive-Consistency (Aggarwal et al. 2023, arXiv 2305.11860): stop when a Beta posterior
  says the leading answer beats the runner-up with probability at least `threshold`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from reasoncli.answers import group_answers

__all__ = [
    "STOP_RULES",
    "BetaRule",
    "EscRule",
    "StopRule",
    "beta_leader_probability",
    "beta_should_stop",
    "esc_should_stop",
]


def esc_should_stop(keys: Sequence[str | None], window: int) -> bool:
    """True when the last `window` answers are all present and all equivalent."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if len(keys) < window:
        return False
    last = keys[-window:]
    if any(k is None or not k.strip() for k in last):
        return False
    return len(group_answers(last)) == 1


def beta_leader_probability(top: int, second: int) -> float:
    """P(p1 > p2) for the two leading answers' shares, given their vote counts.

    With a uniform prior the leader's share of the two, X, is Beta(top + 1, second + 1), and
    P(X > 1/2) = 1 - I_{1/2}(a, b) = P(Bin(a + b - 1, 1/2) < a), exact in integers.
    """
    if top < 0 or second < 0:
        raise ValueError(f"counts must be non-negative, got {top} and {second}")
    a = top + 1
    n = top + second + 1
    below, term = 0, 1  # term = comb(n, j), updated in place rather than recomputed
    for j in range(a):
        below += term
        term = term * (n - j) // (j + 1)
    return float(Fraction(below, 2**n))


def _top_two(counts: Sequence[int]) -> tuple[int, int]:
    ranked = sorted(counts, reverse=True) + [0, 0]
    return ranked[0], ranked[1]


def beta_should_stop(counts: Sequence[int], threshold: float = 0.95) -> bool:
    """True when the leading group beats the runner-up with probability >= `threshold`."""
    if not counts or max(counts) == 0:
        return False
    return beta_leader_probability(*_top_two(counts)) >= threshold


class StopRule(Protocol):
    """Decides, after each finished branch, whether the vote may stop early."""

    def decide(self, answers: Sequence[str | None]) -> str | None:
        """A human-readable reason to stop now, or None to keep sampling."""
        ...


@dataclass(frozen=True)
class EscRule:
    """ESC: stop when the last `window` answers agree."""

    window: int = 5

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"ESC window must be at least 1, got {self.window}")

    def decide(self, answers: Sequence[str | None]) -> str | None:
        if not esc_should_stop(answers, self.window):
            return None
        leader = group_answers(answers[-self.window :])[0].answer
        return f"last {self.window} answers agree on {leader}"


@dataclass(frozen=True)
class BetaRule:
    """Adaptive-Consistency: stop when the leader wins with posterior probability >= threshold.

    `min_samples` branches (answered or not) are always drawn first, so one lucky answer cannot
    end the vote on its own.
    """

    threshold: float = 0.95
    min_samples: int = 3

    def __post_init__(self) -> None:
        if not 0.5 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0.5, 1], got {self.threshold}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {self.min_samples}")

    def decide(self, answers: Sequence[str | None]) -> str | None:
        if len(answers) < self.min_samples:
            return None
        groups = sorted(group_answers(answers), key=lambda g: -len(g.members))
        if not groups:
            return None
        top, second = _top_two([len(g.members) for g in groups])
        probability = beta_leader_probability(top, second)
        if probability < self.threshold:
            return None
        return (
            f"{groups[0].answer} leads {top} to {second}; "
            f"P(it stays ahead) = {probability:.3f} >= {self.threshold:g}"
        )


# The CLI's `--early-stop` choices; each builds a rule with its published defaults.
STOP_RULES: Mapping[str, Callable[[], StopRule]] = {
    "esc": EscRule,
    "beta": BetaRule,
}
