"""The strategy interface and its single registry.

Every strategy is a class with an `info` (name, kind, summary) and a `run()` that returns a
`Result` and reports progress only through events; `BaseStrategy` gives it the option check.
The CLI's choices, `reason strategies`, the help text and the parametrized tests all read
`REGISTRY`. The options a strategy reads are declared with the options themselves
(`reasoncli.options`); `info.options` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Protocol

from reasoncli.engine.protocols import ModelSession
from reasoncli.errors import UsageError
from reasoncli.events import EventSink
from reasoncli.options import StrategyOptions, strategy_options
from reasoncli.results import Result


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
    continues: bool = False
    """Forks branches or appends text to them, so a remote model needs its prompt template."""
    one_chain: bool = False
    """Starts one branch and keeps it, so its trace can be streamed while it is written."""

    @property
    def options(self) -> tuple[str, ...]:
        """The options a user can set that this strategy reads, as `reasoncli.options`
        declares them."""
        return strategy_options(self.name)


class Strategy(Protocol):
    info: ClassVar[StrategyInfo]

    def check(self, options: StrategyOptions) -> None:
        """Reject options that do not fit this strategy (UsageError)."""

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        """Answer `question`. Ctrl-C returns the partial result with `interrupted=True`."""
        ...


class BaseStrategy:
    """The `check` every strategy shares, so none can skip the options' own rules: those first,
    then what only this strategy refuses (`_check_own`, nothing by default)."""

    info: ClassVar[StrategyInfo]

    def check(self, options: StrategyOptions) -> None:
        options.check()
        self._check_own(options)

    def _check_own(self, options: StrategyOptions) -> None:
        """Reject combinations that only this strategy cannot run (UsageError)."""


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
