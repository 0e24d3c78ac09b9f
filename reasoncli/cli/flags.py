"""Typer flags made from the option declarations (`reasoncli.options`), so no command repeats
an option's names, help, panel, default or range.

- `option_of(name)` is the `typer.Option` of one declared option's flag, for an alias that
  spells its type for mypy (`Threads = Annotated[int | None, option_of("threads")]`; a test
  holds the two to the declaration);
- `@strategy_flags(command)` gives a command function a flag for every strategy option that the
  command shows (its `Opt.commands`; for "bench", the options with a bench help) in place of its
  keyword-only `options` parameter, and calls it with `options`, the dict of their values;
- `@engine_flags` gives a run command (`ask`, `think`, `bench run`, `rollouts`, `tune`) the
  engine and remote flags (`EngineFlags`) after its own, read back from `ctx.params`;
- `@request_flags(cls)` gives a command a flag for every declared field of `cls` (the train
  commands' `TrainRequest`, `VerifierRequest`) in place of its keyword-only `flags` parameter,
  and calls it with `flags`, the dict of their values, which builds the request;
- `@shared_flags(template, before=...)` gives a command the parameters a template function
  declares (`ask` and `think` share their sampling and output flags so), read back alike;
- `number_option(...)` / `number_argument(...)` are the flags of a number with bounds, declared
  or not: typer checks `min`/`max` through pydantic ("Input should be greater than or equal to
  1", under a usage block), so the number is read and checked here instead, and a wrong one is
  the one-line usage error every option check gives (`--branches must be at least 1, not 0`).
  Typer still gets the bounds, for the `[x>=1]` of --help.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer

from reasoncli.cli.help import PANELS
from reasoncli.option_checks import read_number
from reasoncli.options import (
    Declared,
    EngineFlags,
    Range,
    StrategyOptions,
    declared,
    every_option,
)

__all__ = [
    "engine_flags",
    "number_argument",
    "number_option",
    "option_of",
    "request_flags",
    "shared_flags",
    "strategy_flags",
]

F = TypeVar("F", bound=Callable[..., Any])
_UNSET: Any = object()


def option_of(name: str, *, command: str = "ask", **change: Any) -> Any:
    """The `typer.Option` of the declared option `name` as `command` shows it.

    `change` overrides what this command means differently: `help`, `default`, `type`, `min`,
    `metavar`. For "bench" (`bench run`, `rollouts`) a flag defaults to None, "not given", so
    a resumed run keeps its own value; it has no panel and typer's own metavar.
    """
    _, info, _ = _param(every_option()[name], command, change)
    return info


def flag_type(name: str, *, command: str = "ask", **change: Any) -> Any:
    """The type the flag of `option_of(name, ...)` takes (for the test of the aliases)."""
    kind, _, _ = _param(every_option()[name], command, change)
    return kind


def number_option(
    *names: str,
    low: float | None = None,
    high: float | None = None,
    kind: type[int] | type[float] = int,
    **kw: Any,
) -> Any:
    """A `typer.Option` for a number in [`low`, `high`], checked in the house's words."""
    kw.update(_bounded(names[0], low, high, kind))
    return typer.Option(*names, **kw)


def number_argument(
    name: str, *, low: float | None = None, kind: type[int] | type[float] = int, **kw: Any
) -> Any:
    """A `typer.Argument` for a number from `low`; `name` is what an error calls it."""
    kw.update(_bounded(name, low, None, kind))
    return typer.Argument(**kw)


def _bounded(
    name: str, low: float | None, high: float | None, kind: type[int] | type[float]
) -> dict[str, Any]:
    allowed = Range(low, high)
    return {
        "min": low,
        "max": high,
        "parser": lambda text: read_number(name, text, kind, allowed),
    }


def strategy_flags(command: str, **changes: dict[str, Any]) -> Callable[[F], F]:
    """Put the strategy options `command` shows where the function's `options` parameter is.

    `changes` maps an option to its `option_of` overrides for this command (think's `max_tokens`).
    """
    if command == "bench":
        chosen = [d for d in declared(StrategyOptions) if d.opt.bench]
    else:
        chosen = [d for d in declared(StrategyOptions) if command in d.opt.commands]
    return lambda func: _splice(func, chosen, command, changes, at="options")


def engine_flags(func: F) -> F:
    """Give a run command the flags of how its model is loaded or reached (`EngineFlags`:
    threads, GPU layers, ..., a remote server's URL), after its own parameters.

    The command does not get them as arguments: `ask.model_request(ctx.params, model)` reads
    them from the parsed parameters, where they are.
    """
    return _splice(func, declared(EngineFlags), "ask", {}, at=None)


def request_flags(cls: type) -> Callable[[F], F]:
    """Put a flag for each declared field of `cls` where the function's `flags` parameter is;
    each has its field's default, and neither a panel nor a metavar of ours (see `_param`)."""
    return lambda func: _splice(func, declared(cls), "request", {}, at="flags")


def shared_flags(template: Callable[..., Any], *, before: str) -> Callable[[F], F]:
    """Give a command the parameters of `template` (a function that only declares them), in
    front of its parameter `before`, for flags that several commands declare alike; like
    `engine_flags`', their values are read back from `ctx.params`. `before` keeps each
    command's --help panels in their order."""
    made = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(template, eval_str=True).parameters.values()
    ]
    return lambda func: _insert(func, made, before=before)


def _splice(
    func: F, chosen: Sequence[Declared], command: str, changes: dict[str, Any], at: str | None
) -> F:
    """`func` with a parameter for each of `chosen` in place of its parameter `at` (which gets
    the dict of their values), or after its last parameter when `at` is None (nothing gets
    them)."""
    params = inspect.signature(func, eval_str=True).parameters
    kind = inspect.Parameter.KEYWORD_ONLY if at is None else params[at].kind
    made = []
    for d in chosen:
        flag_kind, info, default = _param(d, command, changes.get(d.name, {}))
        made.append(
            inspect.Parameter(d.name, kind, annotation=Annotated[flag_kind, info], default=default)
        )
    return _insert(func, made, at=at)


def _insert(
    func: F,
    made: Sequence[inspect.Parameter],
    *,
    at: str | None = None,
    before: str | None = None,
) -> F:
    """`func` with the parameters `made` in place of its parameter `at` (which gets the dict of
    their values), in front of its parameter `before`, or after its last one (nothing gets
    them)."""
    signature = inspect.signature(func, eval_str=True)
    params = list(signature.parameters.values())
    where = at or before
    i = len(params) if where is None else next(i for i, p in enumerate(params) if p.name == where)
    names = [p.name for p in made]

    @functools.wraps(func)
    def command_function(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in names if name in kwargs}
        if at is not None:
            kwargs[at] = given
        return func(*args, **kwargs)

    rest = params[i + 1 :] if at is not None else params[i:]
    command_function.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*params[:i], *made, *rest]
    )
    return command_function  # type: ignore[return-value]


def _param(d: Declared, command: str, change: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(annotation type, typer.Option, default) of one declared option, as `command` shows it:
    "bench" (`bench run`, `rollouts`), "request" (the train commands: no panels, typer's own
    metavars) or a strategy command ("ask", "think")."""
    opt = d.opt
    kind = change.get("type", d.type)
    low = None if opt.range is None or opt.range.low is None else int(opt.range.low)
    kw: dict[str, Any] = {}
    if command == "bench":
        default = change.get("default")
        text = change.get("help", opt.bench)
        minimum = change.get("min", low if kind is int else None)
    else:
        default = change.get("default", None if opt.unset_default else d.default)
        text = change.get("help", opt.help)
        if opt.labelled and "help" not in change:
            text = f"({', '.join(opt.strategies or ())}) {text}"
        minimum = change.get("min", low if opt.cli_range else None)
        if command != "request":
            kw["rich_help_panel"] = PANELS[opt.panel]
            kw["metavar"] = change.get("metavar", opt.metavar)
    if minimum is not None:
        kw.update(_bounded(d.flag, minimum, None, kind))
    if opt.envvar:
        kw["envvar"] = opt.envvar
    if default is None:
        kind = kind | None
    return kind, typer.Option(*d.flags, help=text, **kw), default
