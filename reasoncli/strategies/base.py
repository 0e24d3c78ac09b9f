"""The strategy interface and its single registry.

Every strategy is a class with an `info` (name, kind, summary, the options it reads) and a
`run()` that returns a `Result` and reports progress only through events. The CLI's choices,
`reason strategies`, the help text and the parametrized tests all read `REGISTRY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Protocol

from reasoncli.engine.sampling import Sampling
from reasoncli.errors import UsageError
from reasoncli.events import EventSink
from reasoncli.results import Result
from reasoncli.session import Session

DEFAULT_MAX_TOKENS = 512  # per-branch cap when --max-tokens is not given
PICKS = ("best", "weighted")  # best-of-n: the top-scored branch, or a score-weighted vote


class Kind(str, Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"
    SEARCH = "search"
    ADAPTIVE = "adaptive"


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    kind: Kind
    summary: str
    options: tuple[str, ...] = ()
    continues: bool = False
    """Forks branches or appends text to them, so a remote model needs its prompt template."""
    one_chain: bool = False
    """Starts one branch and keeps it, so its trace can be streamed while it is written."""


@dataclass
class StrategyOptions:
    """Every knob a strategy may read; each strategy lists the ones it uses in its info.

    Field names are the CLI flag names with dashes turned into underscores, so `reason
    strategies` can show a strategy's flags straight from its `info.options`.
    """

    branches: int = 8
    max_tokens: int = DEFAULT_MAX_TOKENS
    # False when the user gave no --max-tokens: a strategy that plans a --budget-tokens may then
    # choose the per-branch cap itself (`auto` does).
    max_tokens_explicit: bool = True
    seed: int = 0
    sampling: Sampling | None = None  # None: the model's defaults from models.yaml
    expect: str | None = None
    multiple_choice: bool = False
    # serial: budget forcing (think) and self-revision (revise)
    min_tokens: int = 0
    max_waits: int = 2
    wait_text: str = "Wait"
    answer_tokens: int = 128
    rounds: int = 3
    final: str = "last"  # revise: "last" round's answer or a "vote" over rounds
    # early stopping for vote-based strategies
    early_stop: bool = False
    stop_rule: str = "beta"  # "beta" (Adaptive-Consistency) | "esc" (window agreement)
    esc_window: int = 4
    beta_threshold: float = 0.95
    # confidence (DeepConf)
    window: int = 128  # tokens in a sliding confidence window
    keep_percent: float = 90.0  # keep the top X% most confident traces
    warmup: int = 4  # branches that calibrate the online threshold
    top_logprobs: int = 5
    # verifiers and search
    verifier: str = "confidence"  # "confidence" | "self" | a catalog model name
    beam_width: int = 4
    step_tokens: int = 64  # a search step ends at a line end or this many tokens
    aggregate: str = "last"  # step scores: "last" | "min" | "prod"
    pick: str = "best"  # best-of-n: "best" branch's answer | "weighted" vote by verifier score
    # adaptive
    budget_tokens: int | None = None
    pilot: int = 4  # branches `auto` samples to estimate difficulty

    def check(self) -> None:
        """Validate the options every strategy shares; raises UsageError (exit 2)."""
        if self.branches < 1:
            raise UsageError("--branches must be at least 1")
        if self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        if self.min_tokens < 0:
            raise UsageError("--min-tokens must not be negative")
        if self.min_tokens > self.max_tokens:
            raise UsageError(
                f"--min-tokens ({self.min_tokens}) is larger than --max-tokens ({self.max_tokens})"
            )
        if self.pick not in PICKS:
            raise UsageError(f"--pick must be one of {', '.join(PICKS)}, not {self.pick!r}")


class Strategy(Protocol):
    info: ClassVar[StrategyInfo]

    def check(self, options: StrategyOptions) -> None:
        """Reject options that do not fit this strategy (UsageError)."""

    def run(
        self, question: str, session: Session, options: StrategyOptions, emit: EventSink
    ) -> Result:
        """Answer `question`. Ctrl-C returns the partial result with `interrupted=True`."""
        ...


REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available everywhere by its name."""
    name = cls.info.name
    if name in REGISTRY:
        raise ValueError(f"strategy {name!r} registered twice")
    REGISTRY[name] = cls
    return cls


def get_strategy(name: str) -> Strategy:
    load_builtin_strategies()
    try:
        return REGISTRY[name]()
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UsageError(f"unknown strategy {name!r}; choose one of: {known}") from None


def strategy_names(kinds: tuple[Kind, ...] | None = None) -> list[str]:
    load_builtin_strategies()
    return [n for n, c in REGISTRY.items() if kinds is None or c.info.kind in kinds]


def load_builtin_strategies() -> None:
    """Import every module in this package, so their `@register` decorators fill the registry."""
    import importlib
    import pkgutil

    import reasoncli.strategies as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
