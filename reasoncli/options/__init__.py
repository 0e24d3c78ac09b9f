"""Every option a run takes, declared once.

Each option is a dataclass field whose metadata (an `Opt`, `options/declare.py`) says all there
is to say about it: its help text, CLI names and help panel, its range or choices, the
strategies that read it and the commands that show it. Three dataclasses hold them:

- `StrategyOptions` (`options/strategy.py`): what strategies read (branches, budgets, stop
  rules, verifiers, ...);
- `SamplingOverrides` (`options/model.py`): the sampling flags, each None to keep the model's
  models.yaml value;
- `EngineFlags` (`options/model.py`): how the model is loaded or reached (threads, GPU layers,
  a remote server).

Everything else is derived from the declarations, so adding an option to a strategy is one new
field in `options/strategy.py` (plus the strategy's code that reads it):

- the flags of `reason ask`, `think`, `bench run` and `rollouts` (`reasoncli.cli.flags`), with
  the `(vote, auto)` labels that say which strategies read a flag;
- each strategy's `info.options` and so `reason strategies`;
- the checks of `option_checks.check_options`, the CLI's (exit 2) and `reason serve`'s (400);
- the `reason` field of `reason serve`'s requests and its OpenAPI schema.

This package imports no strategy, engine or CLI library, so `--help` stays fast.
"""

from __future__ import annotations

from reasoncli.options.declare import (
    BRANCHES,
    BUDGET,
    ENGINE,
    OUTPUT,
    REMOTE,
    REQUEST_TOKENS,
    REVISE,
    RUN,
    SAMPLING,
    SEARCH,
    THINK,
    TOKENS,
    VOTING,
    Declared,
    Opt,
    Range,
    declared,
    option,
)
from reasoncli.options.model import BACKENDS, EngineFlags, SamplingOverrides
from reasoncli.options.strategy import (
    AGGREGATES,
    DEFAULT_MAX_TOKENS,
    FINAL_MODES,
    PICKS,
    STOP_RULE_NAMES,
    StrategyOptions,
)

__all__ = [
    "AGGREGATES",
    "BACKENDS",
    "BRANCHES",
    "BUDGET",
    "DEFAULT_MAX_TOKENS",
    "ENGINE",
    "FINAL_MODES",
    "OUTPUT",
    "PICKS",
    "REMOTE",
    "REQUEST_TOKENS",
    "REVISE",
    "RUN",
    "SAMPLING",
    "SEARCH",
    "STOP_RULE_NAMES",
    "THINK",
    "TOKENS",
    "VOTING",
    "Declared",
    "EngineFlags",
    "Opt",
    "Range",
    "SamplingOverrides",
    "StrategyOptions",
    "declared",
    "every_option",
    "labelled_options",
    "option",
    "strategy_options",
]


def every_option() -> dict[str, Declared]:
    """Every declared option by name: the strategies', the sampling flags, the engine's."""
    return {
        d.name: d
        for cls in (StrategyOptions, SamplingOverrides, EngineFlags)
        for d in declared(cls)
    }


def strategy_options(strategy: str) -> tuple[str, ...]:
    """The options `strategy` reads that a user can set with a flag (its `info.options`)."""
    return tuple(
        d.name
        for d in declared(StrategyOptions)
        if d.opt.commands and (d.opt.strategies is None or strategy in d.opt.strategies)
    )


def labelled_options() -> dict[str, tuple[str, ...]]:
    """Options only some strategies read -> those strategies, as `--help` labels them."""
    return {
        d.name: d.opt.strategies
        for d in declared(StrategyOptions)
        if d.opt.labelled and d.opt.strategies is not None and d.opt.commands
    }
