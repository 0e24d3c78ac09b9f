"""Range and choice checks for the options a run takes, shared by the CLI (exit 2), the
strategies' own `check` and `reason serve` (400).

Typer only checks types, so `--threads -3` or `--top-p 5` would reach llama.cpp (or the JSON)
unnoticed. The rules are the ranges and choices declared with each option (`reasoncli.options`),
so the messages and limits are the same wherever a run is asked for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from reasoncli.errors import UsageError
from reasoncli.options import Range, every_option

__all__ = ["RULES", "CHOICES", "CONFLICTS", "check_options", "check_range", "read_number"]


@dataclass(frozen=True)
class Rule:
    flag: str
    range: Range


RULES: dict[str, Rule] = {
    name: Rule(d.flag, d.opt.range) for name, d in every_option().items() if d.opt.range is not None
}
"""Option name (the Python parameter, as in `ctx.params` or an API body) -> its range."""

CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    name: (d.flag, d.opt.choices) for name, d in every_option().items() if d.opt.choices
}
"""Option name -> (its flag, the values it may take)."""

CONFLICTS: tuple[tuple[str, str], ...] = (("json_out", "jsonl"),)
"""Pairs of switches that cannot both be on."""

_FLAGS = {"json_out": "--json", "jsonl": "--jsonl"}


def check_options(
    values: Mapping[str, object],
    *,
    names: Literal["flag", "field"] = "flag",
    only: Collection[str] | None = None,
) -> None:
    """Raise `UsageError` for the first value out of range or choices, or two switches that
    conflict.

    `values` maps option names to values (a command's `ctx.params`, the fields of a
    `StrategyOptions`, or the sampling fields of an API request); names without a rule and
    `None` values are skipped, and so are names not in `only` when it is given. `names="field"`
    words the message with the field name (`top_p`) instead of the flag (`--top-p`).
    """
    for key, rule in RULES.items():
        value = values.get(key)
        if value is None or isinstance(value, bool) or (only is not None and key not in only):
            continue
        if not isinstance(value, int | float):
            raise UsageError(f"{_name(key, rule.flag, names)} must be a number, not {value!r}")
        check_range(_name(key, rule.flag, names), value, rule.range)
    for key, (flag, choices) in CHOICES.items():
        value = values.get(key)
        if value is None or (only is not None and key not in only) or value in choices:
            continue
        raise UsageError(
            f"{_name(key, flag, names)} must be one of {', '.join(choices)}, not {value!r}"
        )
    for a, b in CONFLICTS:
        if values.get(a) and values.get(b):
            first, second = (_name(k, _FLAGS.get(k, k), names) for k in (a, b))
            raise UsageError(f"{first} and {second} do not go together: choose one")


def check_range(name: str, value: float, allowed: Range) -> None:
    """The one wording of a value out of range, wherever it is checked (the CLI's parsing,
    `check_options`, `reason serve`): `--branches must be at least 1, not 0`."""
    if not allowed.ok(value):
        raise UsageError(f"{name} must be {allowed.requirement}, not {value:g}")


def read_number(
    name: str, text: str | float, kind: type[int] | type[float], allowed: Range
) -> float:
    """`text` as an int or float within `allowed`, else a `UsageError` worded as above."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{name} must be {what}, not {text!r}") from None
    check_range(name, value, allowed)
    return value


def _name(key: str, flag: str, names: str) -> str:
    return flag if names == "flag" else key
