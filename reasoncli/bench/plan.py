"""What a bench run does: strategies × budgets, the shared options, and how a budget maps to them.

A budget is branches (`--branches 1,4,8`) or total tokens per question
(`--budget-tokens 4000,16000`). Token budgets go to strategies that plan with one
(`budget_tokens` among their options); a serial strategy spends it as its thinking budget
(`max_tokens`); any other strategy gets `tokens // max_tokens` branches, so a vote with
`--max-tokens 512` under 4000 tokens samples 7 branches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reasoncli.errors import UsageError
from reasoncli.options import DEFAULT_MAX_TOKENS, StrategyOptions, declared
from reasoncli.strategies.base import Kind, get_strategy, strategy_names

__all__ = ["DEFAULT_BRANCHES", "JUDGE_OPTIONS", "BenchPlan", "Budget", "budget_grid"]

DEFAULT_BRANCHES = 8
JUDGE_OPTIONS = tuple(d.name for d in declared(StrategyOptions) if d.opt.bench)
"""StrategyOptions a bench passes through as given: those declared with a `bench` help (the
verifier and search settings of best-of-n, beam and dvts; think's --min-tokens)."""


@dataclass(frozen=True)
class Budget:
    branches: int | None = None
    tokens: int | None = None

    @property
    def label(self) -> str:
        parts = []
        if self.branches is not None:
            parts.append(f"n={self.branches}")
        if self.tokens is not None:
            parts.append(f"{self.tokens} tok")
        return " ".join(parts) or f"n={DEFAULT_BRANCHES}"

    def sort_key(self) -> tuple[int, int]:
        return (self.tokens or 0, self.branches or 0)

    def to_json(self) -> dict[str, int | None]:
        return {"branches": self.branches, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Budget:
        return cls(branches=data.get("branches"), tokens=data.get("tokens"))


def budget_grid(branches: list[int] | None, tokens: list[int] | None) -> list[Budget]:
    """The budgets to run; both axes at once only when one of them is a single value."""
    for name, values in (("--branches", branches), ("--budget-tokens", tokens)):
        if values is not None and (not values or min(values) < 1):
            raise UsageError(f"{name} takes positive integers, e.g. 1,4,8")
    if branches and tokens and len(branches) > 1 and len(tokens) > 1:
        raise UsageError("give a list to --branches or to --budget-tokens, not to both")
    grid = [
        Budget(b, t)
        for b in (branches or [None])  # type: ignore[list-item]
        for t in (tokens or [None])  # type: ignore[list-item]
    ]
    unique = list(dict.fromkeys(grid))
    return unique if (branches or tokens) else [Budget(DEFAULT_BRANCHES)]


@dataclass
class BenchPlan:
    strategies: list[str]
    budgets: list[Budget]
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_tokens_explicit: bool = True  # False: a strategy planning a token budget picks its cap
    seed: int = 0
    temperature: float | None = None
    given: dict[str, Any] = field(default_factory=dict)  # JUDGE_OPTIONS; the rest: defaults

    def cells(self) -> list[tuple[str, Budget]]:
        return [(s, b) for s in self.strategies for b in self.budgets]

    def options(self, strategy: str, budget: Budget, *, multiple_choice: bool) -> StrategyOptions:
        """The StrategyOptions for one cell of the grid (see the module docstring)."""
        info = get_strategy(strategy).info
        options = StrategyOptions(
            branches=budget.branches or DEFAULT_BRANCHES,
            max_tokens=self.max_tokens,
            max_tokens_explicit=self.max_tokens_explicit,
            seed=self.seed,
            multiple_choice=multiple_choice,
            **self.judge(),
        )
        if budget.tokens is not None:
            if "budget_tokens" in info.options:
                options.budget_tokens = budget.tokens
            elif info.kind == Kind.SERIAL:
                options.max_tokens = budget.tokens
            elif budget.branches is None:
                options.branches = max(1, budget.tokens // self.max_tokens)
        return options

    def check(self) -> None:
        """Reject an impossible cell before the model loads (UsageError, exit 2)."""
        if not self.strategies:
            raise UsageError("--strategy needs at least one strategy name")
        if self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        for strategy, budget in self.cells():
            get_strategy(strategy).check(self.options(strategy, budget, multiple_choice=False))
        judged = any(map(_judged, self.strategies))
        if self.judge()["verifier"] != StrategyOptions.verifier and not judged:
            takers = ", ".join(s for s in strategy_names() if _judged(s))
            raise UsageError(f"--verifier applies to {takers}, not {', '.join(self.strategies)}")

    def judge(self) -> dict[str, Any]:
        """Every JUDGE_OPTIONS value: as given, else StrategyOptions' default."""
        defaults = StrategyOptions()
        return {name: self.given.get(name, getattr(defaults, name)) for name in JUDGE_OPTIONS}

    def to_json(self) -> dict[str, Any]:
        return {
            "strategies": self.strategies,
            "budgets": [b.to_json() for b in self.budgets],
            "max_tokens": self.max_tokens,
            "max_tokens_explicit": self.max_tokens_explicit,
            "seed": self.seed,
            "temperature": self.temperature,
            **self.judge(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchPlan:
        return cls(
            strategies=list(data["strategies"]),
            budgets=[Budget.from_json(b) for b in data["budgets"]],
            max_tokens=int(data["max_tokens"]),
            max_tokens_explicit=bool(data.get("max_tokens_explicit", True)),
            seed=int(data["seed"]),
            temperature=data.get("temperature"),
            given={name: data[name] for name in JUDGE_OPTIONS if name in data},  # older: none
        )


def _judged(strategy: str) -> bool:
    """Whether the strategy takes a `--verifier` (best-of-n and the step searches)."""
    return "verifier" in get_strategy(strategy).info.options
