"""From an OpenAI request body to the strategy run it asks for.

The strategy comes from the model name (`vote-8-smollm2-135m`: strategy, optional branch count,
model) or from the `reason` field (`{"strategy": "vote", "branches": 8, ...}`), which takes every
`StrategyOptions` field the CLI has, under the same names. Values are type-checked here and then
validated by the strategy's own `check()`, the code the CLI runs, so both reject the same input.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from reasoncli.errors import UsageError
from reasoncli.strategies.base import StrategyOptions, get_strategy, strategy_names

# Sampling knobs the `reason` field (and the OpenAI body, for the first two) may set.
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p")
# StrategyOptions fields a request cannot set: they are built from other fields.
_INTERNAL = {"sampling", "max_tokens_explicit"}
_COUNT = re.compile(r"(\d+)-(.+)")


class ModelNotFound(UsageError):
    """The request names a model this server does not serve (HTTP 404)."""


@dataclass
class RunSpec:
    """One request's strategy run, before it is started."""

    strategy: str
    options: StrategyOptions
    sampling: dict[str, Any] = field(default_factory=dict)
    n: int = 1
    stream: bool = False
    include_usage: bool = False


def split_model_name(name: str, served: str) -> tuple[str | None, int | None]:
    """(strategy, branches) encoded in a model name such as `vote-8-smollm2-135m`.

    The bare served name gives (None, None): the server's default strategy.
    """
    if name == served:
        return None, None
    for strategy in sorted(strategy_names(), key=len, reverse=True):
        if not name.startswith(strategy + "-"):
            continue
        rest = name[len(strategy) + 1 :]
        if rest == served:
            return strategy, None
        if (m := _COUNT.fullmatch(rest)) and m.group(2) == served:
            return strategy, int(m.group(1))
    raise ModelNotFound(
        f"model {name!r} is not served here; use {served!r} or STRATEGY[-N]-{served} "
        "(see /v1/models)"
    )


def served_model_names(served: str) -> list[str]:
    """What /v1/models lists: the model, then one name per strategy."""
    return [served, *(f"{s}-{served}" for s in strategy_names())]


def _option_types() -> dict[str, type]:
    hints = typing.get_type_hints(StrategyOptions)
    types: dict[str, type] = {}
    for f in fields(StrategyOptions):
        if f.name in _INTERNAL:
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        types[f.name] = args[0] if args else hint
    return types


def _coerce(key: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    raise UsageError(f"reason.{key} must be {kind.__name__}, not {type(value).__name__}")


def parse_run(body: dict[str, Any], *, served: str, defaults: dict[str, Any]) -> RunSpec:
    """Validate an OpenAI request body and build the run; raises UsageError (HTTP 400)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UsageError("'model' is required: the served model, or STRATEGY[-N]-MODEL")
    strategy, count = split_model_name(model, served)
    extra = body.get("reason") or {}
    if not isinstance(extra, dict):
        raise UsageError("'reason' must be an object of strategy options")
    values: dict[str, Any] = {k: v for k, v in defaults.items() if k != "strategy"}
    if count is not None:
        values["branches"] = count
    sampling: dict[str, Any] = {}
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            sampling[key] = _coerce(key, body[key], float)
    if (max_tokens := body.get("max_completion_tokens", body.get("max_tokens"))) is not None:
        values["max_tokens"] = _coerce("max_tokens", max_tokens, int)
    if body.get("seed") is not None:
        values["seed"] = _coerce("seed", body["seed"], int)
    types = _option_types()
    for key, value in extra.items():
        if key == "strategy":
            continue
        if key in SAMPLING_KEYS:
            kind = int if key == "top_k" else float
            sampling[key] = _coerce(key, value, kind)
        elif key in types:
            values[key] = _coerce(key, value, types[key])
        else:
            known = ", ".join(sorted([*types, *SAMPLING_KEYS, "strategy"]))
            raise UsageError(f"unknown option reason.{key}; known: {known}")
    chosen = extra.get("strategy", strategy) or defaults.get("strategy", "vote")
    if not isinstance(chosen, str):
        raise UsageError("reason.strategy must be a string")
    if strategy is not None and "strategy" in extra and extra["strategy"] != strategy:
        raise UsageError(
            f"model {model!r} asks for {strategy} but reason.strategy is {extra['strategy']!r}"
        )
    runner = get_strategy(chosen)  # unknown strategy: UsageError listing the known ones
    options = StrategyOptions(**values)
    options.max_tokens_explicit = "max_tokens" in values
    runner.check(options)
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 16:
        raise UsageError("'n' must be an integer from 1 to 16")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise UsageError("'stream' must be true or false")
    stream_options = body.get("stream_options") or {}
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    return RunSpec(
        strategy=chosen,
        options=options,
        sampling=sampling,
        n=n,
        stream=stream,
        include_usage=include_usage,
    )


def chat_messages(body: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last user message) and the conversation before it."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UsageError("'messages' must be a non-empty list")
    turns: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise UsageError(f"messages[{i}] needs a role of system, user or assistant")
        turns.append({"role": m["role"], "content": _text(m.get("content"), f"messages[{i}]")})
    if turns[-1]["role"] != "user":
        raise UsageError("the last message must be the user's question")
    return turns[-1]["content"], turns[:-1]


def completion_prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    return _text(prompt, "'prompt'")


def _text(content: Any, where: str) -> str:
    """Message content as text: a string, or OpenAI's list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
    raise UsageError(f"{where} must be text")
