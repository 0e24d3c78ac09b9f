"""From an OpenAI request body to the strategy run it asks for.

The strategy comes from the model name (`vote-8-smollm2-135m`: strategy, optional branch count,
model) or from the `reason` field (`{"strategy": "vote", "branches": 8, ...}`), which takes every
declared strategy option and sampling flag (`reasoncli.options`) under its field name. Values are
type-checked here against the declarations, bounded by the server's limits, then checked against
the declared ranges and by the strategy's own `check()`, the code the CLI runs, so both reject the
same input.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from reasoncli.errors import UsageError
from reasoncli.option_checks import check_options
from reasoncli.options import (
    BRANCHES,
    REQUEST_TOKENS,
    TOKENS,
    SamplingOverrides,
    StrategyOptions,
    declared,
    every_option,
)
from reasoncli.reasoning import EFFORTS, ThinkingBudget, effort_budget
from reasoncli.strategies.base import get_strategy, strategy_names

# Sampling knobs the `reason` field (and the OpenAI body, for the first two) may set.
SAMPLING_KEYS = tuple(d.name for d in declared(SamplingOverrides))
# The strategy options a request may set: every declared one (not `sampling`, which is built
# from the sampling keys, nor `max_tokens_explicit`, from whether max_tokens was given).
STRATEGY_KEYS = tuple(d.name for d in declared(StrategyOptions))
_COUNT = re.compile(r"(\d+)-(.+)")


class ModelNotFound(UsageError):
    """The request names a model this server does not serve (HTTP 404)."""


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. Each is a `reason serve` flag and is listed in /health.

    They bound the work a request can cause before anything is decoded; `max_request_tokens`
    is also enforced while it runs (pool.TokenBudget), since serial and adaptive strategies
    cannot always say up front how many tokens they will spend.
    """

    max_body_bytes: int = 1 << 20  # --max-body-bytes (HTTP 413 beyond it)
    max_n: int = 16  # --max-n: independent results per request
    max_request_branches: int = 16  # --max-branches: n x branches, so a request fits at once
    max_tokens_per_branch: int = 2048  # --ctx: a branch's prompt and generated tokens
    max_request_tokens: int = 32_768  # --max-request-tokens: generated tokens over n x branches

    def to_json(self) -> dict[str, int]:
        return asdict(self)


# Ranges for the integer options a request may set: (lowest, highest), from each option's
# declared range and `serve_max`, where a highest of "branches", "tokens" or "request_tokens"
# is the server's limit of that name. Floats must be finite and in their declared range; the
# strategies' own check() then applies the rules that span options, as the CLI does.
INT_RANGES: dict[str, tuple[int, int | str]] = {
    name: (int(d.opt.range.low or 0) if d.opt.range else 0, d.opt.serve_max)
    for name, d in every_option().items()
    if d.type is int and d.opt.serve_max is not None
}
MAX_STRING_CHARS = 1000  # wait_text, expect and the other free-text options
# A request may not make the server load another model file: the verifiers it may name are the
# ones that use the loaded model (a file path from a client would be read from the server's disk).
SERVED_VERIFIERS = ("confidence", "self", "orm:self", "prm:self")
# String options with a fixed set of values, checked for every strategy (the strategies check
# only the ones they read), so that the published schema's enums are exactly what is accepted.
CHOICES: dict[str, tuple[str, ...]] = {
    **{d.name: d.opt.choices for d in declared(StrategyOptions) if d.opt.choices},
    "verifier": SERVED_VERIFIERS,
}


@dataclass
class RunSpec:
    """One request's strategy run, before it is started."""

    strategy: str
    options: StrategyOptions
    sampling: dict[str, Any] = field(default_factory=dict)
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    skip_thinking: bool = False  # reasoning_effort none, or thinking_budget_tokens 0


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
    return {d.name: d.type for d in declared(StrategyOptions)}


def _optional_fields() -> set[str]:
    return {d.name for d in declared(StrategyOptions) if d.optional}


def _coerce(key: str, value: Any, kind: type, limits: Limits, *, nullable: bool = False) -> Any:
    """`value` as `kind`, in range; a wrong type, NaN, or a value out of range is a UsageError."""
    if value is None:
        if nullable:
            return None
        raise UsageError(f"{key} must be {_KIND_NAMES[kind]}, not null")
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 8.0 is an integer in JSON Schema, so it is one here too
        if isinstance(value, int) and not isinstance(value, bool):
            _check_range(key, value, limits)
            return value
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UsageError(f"{key} must be a finite number, not {value}")
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            name = key.removeprefix("reason.")
            if name in CHOICES and value not in CHOICES[name]:
                raise UsageError(f"{key} must be one of {', '.join(CHOICES[name])}, not {value!r}")
            if len(value) > MAX_STRING_CHARS:
                raise UsageError(f"{key} must be at most {MAX_STRING_CHARS} characters")
            return value
    raise UsageError(f"{key} must be {_KIND_NAMES[kind]}, not {_json_type(value)}")


_KIND_NAMES = {bool: "true or false", int: "int", float: "a number", str: "a string"}


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def int_range(name: str, limits: Limits) -> tuple[int, int]:
    """An integer option's (lowest, highest), with the server's limits in place of their names."""
    low, high = INT_RANGES[name]
    if isinstance(high, str):
        high = {
            BRANCHES: limits.max_request_branches,
            TOKENS: limits.max_tokens_per_branch,
            REQUEST_TOKENS: limits.max_request_tokens,
        }[high]
    return low, high


def _check_range(key: str, value: int, limits: Limits) -> None:
    name = key.removeprefix("reason.").split(" ")[0]
    if name not in INT_RANGES:
        return
    low, top = int_range(name, limits)
    if not low <= value <= top:
        raise UsageError(f"{key} must be an integer from {low} to {top}, not {value}")


# Options whose default is a number of branches: a request that asks for fewer branches and
# leaves them unset gets them lowered to its branch count instead of a 400 for a value it never
# gave (vote-2 with weighted-vote's --warmup 4).
_BRANCH_BOUND_DEFAULTS = ("warmup", "beam_width", "pilot")


def _fit_defaults(values: dict[str, Any], limits: Limits) -> None:
    """Defaults that the request's own values or this server's limits make impossible."""
    defaults = StrategyOptions()
    branches = values.get("branches", defaults.branches)
    for name in _BRANCH_BOUND_DEFAULTS:
        if name not in values:
            values[name] = min(getattr(defaults, name), branches)
    if "max_tokens" not in values:  # a small --ctx: the default must leave room for a prompt
        values["max_tokens"] = min(defaults.max_tokens, limits.max_tokens_per_branch // 2)


def _branches_at_once(strategy: str, options: StrategyOptions, used: tuple[str, ...]) -> int:
    """Branch slots one run of `strategy` reserves on the shared context."""
    if strategy == "auto":
        from reasoncli.strategies.auto import MAX_LIVE_BRANCHES, branch_cap, total_budget

        cap = branch_cap(options).tokens
        return max(options.pilot, min(total_budget(options) // cap, MAX_LIVE_BRANCHES))
    return options.branches if "branches" in used else 1


def planned_tokens(strategy: str, options: StrategyOptions) -> int:
    """The most tokens one run of `strategy` plans to generate with these options.

    Used to refuse a request whose plan is over --max-request-tokens before it decodes; the
    engine-side budget catches what a strategy's plan does not show (search, forcing).
    """
    info = get_strategy(strategy).info
    if strategy == "revise":
        return options.rounds * options.max_tokens
    if strategy == "think":
        return options.max_tokens + options.answer_tokens
    if strategy == "auto":
        return options.budget_tokens or options.branches * options.max_tokens
    if "branches" in info.options:
        return options.branches * options.max_tokens
    return options.max_tokens


def thinking_budget(
    body: dict[str, Any], limits: Limits, effort_budgets: dict[str, int] | None = None
) -> ThinkingBudget:
    """The request's thinking budget: llama.cpp's `thinking_budget_tokens` (-1: none), else
    `reasoning_effort` through the model's table, capped to what --ctx leaves for thinking."""
    tokens = body.get("thinking_budget_tokens")
    if tokens is not None:
        if isinstance(tokens, float) and tokens.is_integer():
            tokens = int(tokens)
        top = limits.max_tokens_per_branch
        if not isinstance(tokens, int) or isinstance(tokens, bool) or not -1 <= tokens <= top:
            raise UsageError(f"'thinking_budget_tokens' must be an integer from -1 to {top}")
        return ThinkingBudget(None if tokens == -1 else tokens)
    effort = body.get("reasoning_effort")
    if effort is None:
        return ThinkingBudget()
    if effort not in EFFORTS:
        raise UsageError(f"'reasoning_effort' must be one of {', '.join(EFFORTS)}, not {effort!r}")
    budget = effort_budget(effort, effort_budgets)
    if budget.tokens:
        return ThinkingBudget(min(budget.tokens, limits.max_tokens_per_branch // 2))
    return budget


def parse_run(
    body: dict[str, Any],
    *,
    served: str,
    defaults: dict[str, Any],
    limits: Limits | None = None,
    effort_budgets: dict[str, int] | None = None,
) -> RunSpec:
    """Validate an OpenAI request body and build the run; raises UsageError (HTTP 400)."""
    limits = limits or Limits()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UsageError("'model' is required: the served model, or STRATEGY[-N]-MODEL")
    strategy, count = split_model_name(model, served)
    extra = body.get("reason")
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise UsageError("'reason' must be an object of strategy options")
    values: dict[str, Any] = {k: v for k, v in defaults.items() if k != "strategy"}
    if count is not None:
        values["branches"] = _coerce("branches (in the model name)", count, int, limits)
    sampling: dict[str, Any] = {}
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            sampling[key] = _coerce(key, body[key], float, limits)
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        values["max_tokens"] = _coerce("max_tokens", max_tokens, int, limits)
    thinking = thinking_budget(body, limits, effort_budgets)
    if thinking.tokens:  # the thinking cap: think forces the answer at it, others stop there
        values["max_tokens"] = min(thinking.tokens, values.get("max_tokens", thinking.tokens))
    if body.get("seed") is not None:
        values["seed"] = _coerce("seed", body["seed"], int, limits)
    types = _option_types()
    optional = _optional_fields()
    for key, value in extra.items():
        if key == "strategy":
            continue
        if key in SAMPLING_KEYS:
            kind = int if key == "top_k" else float
            sampling[key] = _coerce(f"reason.{key}", value, kind, limits)
        elif key in types:
            values[key] = _coerce(
                f"reason.{key}", value, types[key], limits, nullable=key in optional
            )
        else:
            known = ", ".join(sorted([*types, *SAMPLING_KEYS, "strategy"]))
            raise UsageError(f"unknown option reason.{key}; known: {known}")
    # The declared ranges (--top-p in (0, 1], --keep-percent in (0, 100], ...), worded by field.
    check_options(sampling, names="field")
    check_options(values, names="field", only=STRATEGY_KEYS)
    asked = extra.get("strategy")
    if asked is not None and not isinstance(asked, str):
        raise UsageError("reason.strategy must be a string")
    chosen = asked or strategy or defaults.get("strategy", "vote")
    if strategy is not None and asked is not None and asked != strategy:
        raise UsageError(
            f"model {model!r} asks for {strategy} but reason.strategy is {extra['strategy']!r}"
        )
    runner = get_strategy(chosen)  # unknown strategy: UsageError listing the known ones
    explicit = "max_tokens" in values
    _fit_defaults(values, limits)
    options = StrategyOptions(**values)
    options.max_tokens_explicit = explicit
    try:
        runner.check(options)
    except (TypeError, ValueError, ArithmeticError) as exc:  # a combination no rule foresaw
        raise UsageError(f"options that do not fit together: {exc}") from None
    n = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= limits.max_n:
        raise UsageError(f"'n' must be an integer from 1 to {limits.max_n} (reason serve --max-n)")
    branches = _branches_at_once(chosen, options, runner.info.options)
    if n * branches > limits.max_request_branches:
        raise UsageError(
            f"n ({n}) x branches ({branches}) is {n * branches}; this server decodes at most "
            f"{limits.max_request_branches} branches for one request (reason serve --max-branches)"
        )
    planned = n * planned_tokens(chosen, options)
    if planned > limits.max_request_tokens:
        raise UsageError(
            f"the request may generate {planned} tokens (n x branches x max_tokens for {chosen}); "
            f"this server allows {limits.max_request_tokens} a request "
            "(reason serve --max-request-tokens): lower max_tokens, branches or n"
        )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise UsageError("'stream' must be true or false")
    stream_options = body.get("stream_options")
    if stream_options is None:
        stream_options = {}
    if not isinstance(stream_options, dict):
        raise UsageError("'stream_options' must be an object")
    include_usage = stream_options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise UsageError("'stream_options.include_usage' must be true or false")
    return RunSpec(
        strategy=chosen,
        options=options,
        sampling=sampling,
        n=n,
        stream=stream,
        include_usage=bool(include_usage),
        skip_thinking=thinking.skip,
    )


# Where clients put an assistant turn's trace: llama.cpp/DeepSeek, then vLLM/ollama/OpenRouter.
REASONING_KEYS = ("reasoning_content", "reasoning")


def chat_messages(body: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last user message) and the conversation before it; earlier traces are
    dropped, as thinking models' templates drop them (they were not trained to read them)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UsageError("'messages' must be a non-empty list")
    turns: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise UsageError(f"messages[{i}] needs a role of system, user or assistant")
        for key in REASONING_KEYS:  # an earlier turn's trace: accepted, not fed back as text
            if m.get(key) is not None and not isinstance(m[key], str):
                raise UsageError(f"messages[{i}].{key} must be a string")
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
    if isinstance(content, list) and content:
        parts = [p.get("text") if isinstance(p, dict) and p.get("type") == "text" else None
                 for p in content]  # fmt: skip
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
    raise UsageError(f"{where} must be text: a string, or a list of text parts")
