"""How an option is declared, and read back: a dataclass field whose metadata is an `Opt` (its
help, flags, panel, range or choices, the strategies that read it, the commands that show it),
and `declared(cls)`, the `Declared` options of such a class in declaration order.

The panel and serve-limit keys are names, so this layer needs neither the CLI nor serve.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

# Panels of `--help`, by key (the titles are the CLI's: reasoncli.cli.help.PANELS).
RUN, SAMPLING, OUTPUT, ENGINE, REMOTE = "run", "sampling", "output", "engine", "remote"
VOTING, SEARCH, BUDGET, THINK, REVISE = "voting", "search", "budget", "think", "revise"

# A top bound of `reason serve` that is one of its limits (serve.request.Limits).
BRANCHES, TOKENS, REQUEST_TOKENS = "branches", "tokens", "request_tokens"


@dataclass(frozen=True)
class Range:
    """Where a number must lie: from `low`, up to `high`; `*_open` leaves the bound itself out."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""  # said after the bounds, e.g. "(0: greedy)"

    def ok(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    @property
    def requirement(self) -> str:
        """Completes "must be ...": "at least 1", "in (0, 1]", "more than 0 seconds"."""
        if self.high is None:
            text = f"{'more than' if self.low_open else 'at least'} {self.low:g}"
        else:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"in {left}{self.low:g}, {self.high:g}{right}"
        return f"{text} {self.note}" if self.note else text


@dataclass(frozen=True)
class Opt:
    """What an option is, beyond its name, type and default (those are the field's own)."""

    help: str
    flags: tuple[str, ...] = ()  # CLI names, the long one first; () is "--" + the dashed name
    metavar: str = "N"  # "" for a switch
    panel: str = RUN
    strategies: tuple[str, ...] | None = None  # the strategies that read it; None: all of them
    commands: tuple[str, ...] = ()  # "ask", "think": the commands with this flag
    bench: str | None = None  # the help of `reason bench run`'s flag; None: bench has none
    range: Range | None = None
    choices: tuple[str, ...] = ()
    serve_max: int | str | None = None  # a request's top value, or the name of a serve limit
    cli_range: bool = False  # click checks `range.low` itself (`x>=1` in --help)
    unset_default: bool = False  # the flag's default is None: "not given" (max_tokens_explicit)
    envvar: str | None = None

    @property
    def labelled(self) -> bool:
        """Whether `--help` names the strategies that read it: every panel but the run's."""
        return self.panel != RUN and self.strategies is not None


def option(default: Any, opt: Opt) -> Any:
    """A dataclass field declared with its `Opt`."""
    return field(default=default, metadata={"opt": opt})


@dataclass(frozen=True)
class Declared:
    """One declared option: its field's name, type (without None), default, and `Opt`."""

    name: str
    type: type
    optional: bool  # None is a value it takes
    default: Any
    opt: Opt

    @property
    def flag(self) -> str:
        return self.opt.flags[0].split("/")[0] if self.opt.flags else self.cli_name

    @property
    def cli_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        return self.opt.flags or (self.cli_name,)


_CACHE: dict[type, tuple[Declared, ...]] = {}


def declared(cls: type) -> tuple[Declared, ...]:
    """The declared options of `StrategyOptions`, `SamplingOverrides` or `EngineFlags`, in
    declaration order (the order of `--help` and `reason strategies`)."""
    if cls not in _CACHE:
        hints = typing.get_type_hints(cls)
        out = []
        for f in fields(cls):
            opt = f.metadata.get("opt")
            if opt is None:
                continue
            args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
            kind = args[0] if args else hints[f.name]
            default = None if f.default is MISSING else f.default
            optional = type(None) in typing.get_args(hints[f.name])
            out.append(Declared(f.name, kind, optional, default, opt))
        _CACHE[cls] = tuple(out)
    return _CACHE[cls]
