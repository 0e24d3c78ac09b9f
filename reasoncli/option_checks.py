"""Range checks for the options a run takes, shared by the CLI (exit 2) and `reason serve` (400).

Typer only checks types, so `--threads -3` or `--top-p 5` would reach llama.cpp (or the JSON)
unnoticed. One table of rules, read by every caller, keeps the messages and limits the same
wherever a run is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from reasoncli.errors import UsageError

__all__ = ["RULES", "CONFLICTS", "check_options"]


@dataclass(frozen=True)
class Rule:
    flag: str
    requirement: str  # completes "must be ...", e.g. "at least 1"
    ok: Callable[[float], bool]


RULES: dict[str, Rule] = {
    "threads": Rule("--threads", "at least 1", lambda v: v >= 1),
    "gpu_layers": Rule("--gpu-layers", "at least -1 (-1: every layer)", lambda v: v >= -1),
    "temperature": Rule("--temperature", "at least 0 (0: greedy)", lambda v: v >= 0),
    "top_p": Rule("--top-p", "in (0, 1]", lambda v: 0 < v <= 1),
    "top_k": Rule("--top-k", "at least 0 (0: off)", lambda v: v >= 0),
    "min_p": Rule("--min-p", "in [0, 1]", lambda v: 0 <= v <= 1),
    "max_concurrency": Rule("--max-concurrency", "at least 1", lambda v: v >= 1),
    "timeout": Rule("--timeout", "more than 0 seconds", lambda v: v > 0),
}
"""Option name (the Python parameter, as in `ctx.params` or an API body) -> its rule."""

CONFLICTS: tuple[tuple[str, str], ...] = (("json_out", "jsonl"),)
"""Pairs of switches that cannot both be on."""

_FLAGS = {"json_out": "--json", "jsonl": "--jsonl"}


def check_options(
    values: Mapping[str, object], *, names: Literal["flag", "field"] = "flag"
) -> None:
    """Raise `UsageError` for the first value out of range, or two switches that conflict.

    `values` maps option names to values (a command's `ctx.params`, or the sampling fields of
    an API request); names without a rule and `None` values are skipped. `names="field"`
    words the message with the field name (`top_p`) instead of the flag (`--top-p`).
    """
    for key, rule in RULES.items():
        value = values.get(key)
        if value is None or isinstance(value, bool):
            continue
        if not isinstance(value, int | float):
            raise UsageError(f"{_name(key, rule.flag, names)} must be a number, not {value!r}")
        if not math.isfinite(value) or not rule.ok(value):
            raise UsageError(
                f"{_name(key, rule.flag, names)} must be {rule.requirement}, not {value:g}"
            )
    for a, b in CONFLICTS:
        if values.get(a) and values.get(b):
            first, second = (_name(k, _FLAGS.get(k, k), names) for k in (a, b))
            raise UsageError(f"{first} and {second} do not go together: choose one")


def _name(key: str, flag: str, names: str) -> str:
    return flag if names == "flag" else key
