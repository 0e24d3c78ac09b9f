"""How `auto` follows a tuned policy: whether it applies to a run, which bin and strategy a
pilot leads to (and why, in words), and the options that strategy runs with.

Pure functions over the policy and the pilot, so tests can check every decision without a
model, and `reason tune` and `auto` bin a question the same way (`difficulty.estimate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from reasoncli.engine.sampling import Sampling
from reasoncli.strategies.base import StrategyOptions
from reasoncli.tune.difficulty import Pilot, estimate
from reasoncli.tune.policy import Action, PolicyRow, TunedPolicy

__all__ = ["Choice", "PolicySource", "applicable", "catalog_policy", "choose", "options_for"]

PolicySource = Callable[[str], TunedPolicy | None]
"""The tuned policy of a model, by the name the session loaded it under (None: no policy)."""


def catalog_policy(model: str) -> TunedPolicy | None:
    """The `policy:` of the model's models.yaml entry, if it has one."""
    from reasoncli.models.catalog import load_catalog

    spec = load_catalog().find(model)
    return spec.policy if spec is not None else None


def applicable(
    policy: TunedPolicy, options: StrategyOptions, budget: int
) -> tuple[PolicyRow | None, str]:
    """The row a run follows, or None and why the constants decide instead.

    The policy fixes the pilot and the per-branch cap its bins were measured with, so a run
    that asks for others cannot use it; `--budget-tokens` picks the row with the largest mean
    budget not above it."""
    default_pilot = StrategyOptions.pilot
    if options.pilot not in (policy.pilot, default_pilot):
        return None, f"--pilot {options.pilot} differs from the policy's {policy.pilot}"
    if options.max_tokens_explicit and options.max_tokens != policy.max_tokens:
        return None, (
            f"--max-tokens {options.max_tokens} differs from the policy's {policy.max_tokens}"
        )
    row = policy.row_for(budget)
    if row is None:
        smallest = policy.budgets[0].budget
        return None, f"the budget ({budget}) is below the policy's smallest row ({smallest})"
    return row, ""


@dataclass(frozen=True)
class Choice:
    """The bin a question fell into after the pilot, the strategy that chose, and why."""

    estimate: str
    difficulty: float
    bin: str
    bin_index: int
    bins: int
    means: str
    row: int  # the row's budget: mean tokens per question on the tuning data
    action: Action
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "difficulty": self.difficulty,
            "bin": self.bin,
            "bin_index": self.bin_index,
            "bins": self.bins,
            "means": self.means,
            "row": self.row,
            "strategy": self.action.label(),
            "action": self.action.model_dump(exclude_none=True),
            "reason": self.reason,
        }


def choose(policy: TunedPolicy, row: PolicyRow, pilot: Pilot, seen: str) -> Choice:
    """Bin the pilot and read the row's strategy for that bin. `seen` says what the pilots
    did, in words (e.g. "3/4 pilots agree on 42")."""
    d = estimate(policy.estimate, pilot)
    index = policy.bin_of(d)
    b = policy.bins[index]
    action = row.strategies[b.name]
    why = f"{seen}: difficulty {d:.2f} ({policy.estimate}), bin {index + 1} of {len(policy.bins)}"
    why += f" ({b.means})" if b.means else ""
    why += f"; the policy's {row.budget} tok/q row runs {action.label()}"
    if row.held_out is not None:
        h = row.held_out
        why += (
            f" (tuned: {h.accuracy:.0%} at {h.tokens:.0f} tok/q on {h.questions} held-out "
            f"questions, {h.baseline} {h.baseline_accuracy:.0%} at {h.baseline_tokens:.0f})"
        )
    return Choice(
        policy.estimate, d, b.name, index, len(policy.bins), b.means, row.budget, action, why
    )


def options_for(action: Action, base: StrategyOptions, sampling: Sampling) -> StrategyOptions:
    """The options the chosen strategy runs with: the run's own (seed, expect, multiple
    choice), the policy's cap, and what the action sets."""
    given = {
        "verifier": action.verifier,
        "pick": action.pick,
        "aggregate": action.aggregate,
        "beam_width": action.beam_width,
        "step_tokens": action.step_tokens,
        "max_tokens": action.max_tokens,
    }
    fields: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    if action.temperature is not None:
        fields["sampling"] = replace(sampling, temperature=action.temperature)
    return replace(
        base,
        branches=action.branches,
        budget_tokens=None,
        early_stop=False,
        max_tokens_explicit=True,
        **fields,
    )
