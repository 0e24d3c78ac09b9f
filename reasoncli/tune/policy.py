"""A tuned policy as it is written into a model's models.yaml entry, and read back by `auto`.

Kept to pydantic only (no numpy, no engine), since the models.yaml schema imports it and
`reason --help` must stay fast. The layout is for a person to read and edit:

    policy:
      estimate: disagreement      # 1 - the leading answer's share of the pilots
      pilot: 4                    # pilot branches of up to max_tokens each
      verifier: null              # orm:NAME scores the pilots for the verifier-* estimates
      max_tokens: 128
      bins:                       # easiest first; a question goes to the first bin that holds it
      - {name: easy, up_to: 0.0, means: all 4 pilots agree}
      - {name: hard, means: the rest}
      budgets:                    # rows by mean tokens per question on the tuning data
      - budget: 256
        strategies:
          easy: {strategy: vote, branches: 4}
          hard: {strategy: vote, branches: 16}
        held_out: {accuracy: 0.6, tokens: 231.0, ...}
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ESTIMATE_NAMES", "Action", "Expected", "PolicyBin", "PolicyRow", "TunedPolicy"]

SERIAL = ("think", "revise")  # one chain: a branch count means nothing, its token budget does
ESTIMATE_NAMES = (
    "disagreement",
    "length",
    "disagreement+length",
    "verifier-best",
    "verifier-share",
)
SCORED_ESTIMATES = ("verifier-best", "verifier-share")  # they need the policy's `verifier`
"""The difficulty estimates `reasoncli.tune.difficulty` defines (a test keeps them equal)."""


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


_Float = Annotated[float, Field(strict=False)]  # YAML writes 1.0 as 1


class Action(_Schema):
    """One strategy run as `reason ask` would run it: the strategy and the options that differ
    from the defaults (the verifier, the pick, a temperature for greedy, ...)."""

    strategy: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    branches: int = Field(1, ge=1)
    verifier: str | None = None
    pick: str | None = Field(None, pattern=r"^(best|weighted)$")
    aggregate: str | None = Field(None, pattern=r"^(last|min|prod)$")
    beam_width: int | None = Field(None, ge=1)
    step_tokens: int | None = Field(None, ge=1)
    temperature: _Float | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1)

    def widens_pilot(self, pilot_max_tokens: int, pilot_verifier: str | None = None) -> bool:
        """A vote sampled as the pilot was, or a best-of-n judged by the verifier that scored
        the pilots: `auto` adds branches to the pilot's own instead of starting over, so the
        pilot's tokens (and scores) are part of it, not extra."""
        same_cap = self.max_tokens in (None, pilot_max_tokens)
        sampled_alike = self.temperature is None and same_cap
        if self.strategy == "vote":
            return sampled_alike
        judged_alike = pilot_verifier is not None and self.verifier == pilot_verifier
        plain = self.aggregate in (None, "last")
        return self.strategy == "best-of-n" and sampled_alike and judged_alike and plain

    def label(self) -> str:
        """Short and unique: `vote n=8`, `greedy`, `best-of-n n=16 weighted prm:X`."""
        if self.strategy == "vote" and self.branches == 1 and self.temperature == 0:
            return "greedy"
        serial = self.strategy in SERIAL
        parts = [self.strategy] if serial else [self.strategy, f"n={self.branches}"]
        if self.pick == "weighted":
            parts.append("weighted")
        if self.verifier and self.verifier != "confidence":
            parts.append(self.verifier)
        if self.aggregate and self.aggregate != "last":
            parts.append(f"agg={self.aggregate}")
        if self.temperature is not None and self.temperature != 0:
            parts.append(f"t={self.temperature:g}")
        if self.max_tokens is not None and serial:
            parts.append(f"{self.max_tokens} tok")
        return " ".join(parts)


class PolicyBin(_Schema):
    name: str = Field(min_length=1)
    up_to: _Float | None = None
    """Holds questions whose difficulty is at most this (and above the previous bin's);
    the last bin has none."""
    means: str = ""
    """The bound in words, for whoever reads the file."""


class Expected(_Schema):
    """What the row did on the held-out questions, against the best uniform strategy there."""

    questions: int = Field(ge=0)
    accuracy: _Float
    tokens: _Float
    baseline: str
    baseline_accuracy: _Float
    baseline_tokens: _Float
    gain: _Float
    gain_low: _Float
    gain_high: _Float


class PolicyRow(_Schema):
    budget: int = Field(ge=1)
    """Mean tokens per question (generated + verifier) the row may spend on the tuning data."""
    strategies: dict[str, Action]
    """Bin name -> the strategy that runs after the pilot."""
    held_out: Expected | None = None


class TunedPolicy(_Schema):
    estimate: str
    pilot: int = Field(ge=1)
    verifier: str | None = None
    """Scores the pilots (the `verifier-*` estimates read the scores); a best-of-n it judges
    then widens the pilot, its scores kept."""
    max_tokens: int = Field(ge=1)
    bins: tuple[PolicyBin, ...] = Field(min_length=1, strict=False)
    budgets: tuple[PolicyRow, ...] = Field(min_length=1, strict=False)
    tuned_on: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> TunedPolicy:
        if self.estimate not in ESTIMATE_NAMES:
            raise ValueError(f"estimate must be one of {', '.join(ESTIMATE_NAMES)}")
        if (self.estimate in SCORED_ESTIMATES) != (self.verifier is not None):
            raise ValueError(
                f"a verifier scores the pilots exactly when the estimate reads scores "
                f"({', '.join(SCORED_ESTIMATES)})"
            )
        bounds = [b.up_to for b in self.bins]
        if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
            raise ValueError("every bin but the last needs up_to; the last has none")
        inner = [b for b in bounds[:-1] if b is not None]
        if inner != sorted(set(inner)):
            raise ValueError("bins' up_to must increase")
        names = [b.name for b in self.bins]
        if len(set(names)) != len(names):
            raise ValueError("bin names repeat")
        for row in self.budgets:
            if list(row.strategies) != names:
                raise ValueError(f"budget {row.budget}: strategies must name the bins {names}")
        budgets = [r.budget for r in self.budgets]
        if budgets != sorted(set(budgets)):
            raise ValueError("budgets must increase")
        return self

    def bin_of(self, difficulty: float) -> int:
        """The index of the first bin that holds `difficulty`."""
        for i, b in enumerate(self.bins):
            if b.up_to is None or difficulty <= b.up_to:
                return i
        return len(self.bins) - 1

    def row_for(self, budget: int) -> PolicyRow | None:
        """The row with the largest budget not above `budget` (None: all rows cost more)."""
        fits = [r for r in self.budgets if r.budget <= budget]
        return fits[-1] if fits else None
