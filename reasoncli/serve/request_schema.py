"""The request half of the OpenAPI document (`serve/schema.py` has the responses and paths).

Built from the same declarations the parser checks against (`reasoncli.options`: types, ranges,
choices; `INT_RANGES` resolved with this server's `Limits`; the strategy registry), so what the
document promises and what `serve/request.py` takes cannot drift apart silently. Also the small
JSON Schema builders both halves use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from reasoncli.options import SamplingOverrides, StrategyOptions, declared, every_option
from reasoncli.reasoning import EFFORTS
from reasoncli.serve.request import CHOICES, INT_RANGES, MAX_STRING_CHARS, Limits, int_range
from reasoncli.strategies.base import strategy_names


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def json_object(
    properties: dict[str, Any],
    required: Sequence[str] = (),
    *,
    description: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    """An object schema: its description, properties and required names, in the order the
    published document has always had them, then any other keyword (`additionalProperties`)."""
    schema: dict[str, Any] = {"type": "object"}
    if description is not None:
        schema["description"] = description
    schema["properties"] = properties
    if required:
        schema["required"] = list(required)
    return {**schema, **more}


def float_range(name: str) -> dict[str, float]:
    """A number's declared range as JSON Schema bounds."""
    bounds = every_option()[name].opt.range
    if bounds is None:
        return {}
    out: dict[str, float] = {}
    if bounds.low is not None:
        out["exclusiveMinimum" if bounds.low_open else "minimum"] = bounds.low
    if bounds.high is not None:
        out["exclusiveMaximum" if bounds.high_open else "maximum"] = bounds.high
    return out


def _int(name: str, limits: Limits) -> dict[str, Any]:
    low, top = int_range(name, limits)
    return {"type": "integer", "minimum": low, "maximum": top}


def _option(name: str, kind: type, limits: Limits) -> dict[str, Any]:
    if name in CHOICES:
        return {"type": "string", "enum": list(CHOICES[name])}
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return _int(name, limits) if name in INT_RANGES else {"type": "integer"}
    if kind is float:
        return {"type": "number", **float_range(name)}
    return {"type": "string", "maxLength": MAX_STRING_CHARS}


def reason_options_schema(limits: Limits) -> dict[str, Any]:
    """The `reason` extension: the strategy and every strategy option, as the parser takes them."""
    props: dict[str, Any] = {
        "strategy": nullable({"type": "string", "enum": sorted(strategy_names())}),
    }
    for d in declared(StrategyOptions):
        schema = _option(d.name, d.type, limits)
        props[d.name] = nullable(schema) if d.optional else schema
    for d in declared(SamplingOverrides):  # given, a sampling value is a value (not null)
        props[d.name] = _option(d.name, d.type, limits)
    return json_object(
        props,
        description="reason's extension: the strategy and its options, named as the CLI flags "
        "with underscores. Options a strategy does not use are accepted and ignored.",
        additionalProperties=False,
    )


def _model_schema(served: str, limits: Limits) -> dict[str, Any]:
    names = sorted(strategy_names(), key=len, reverse=True)
    counts = "|".join(str(n) for n in range(limits.max_request_branches, 0, -1))
    pattern = f"^({'|'.join(re.escape(n) for n in names)})-({counts})-{re.escape(served)}$"
    return {
        "description": "The served model, STRATEGY-MODEL, or STRATEGY-N-MODEL (N branches).",
        "anyOf": [
            {"type": "string", "enum": [served, *(f"{s}-{served}" for s in strategy_names())]},
            {"type": "string", "pattern": pattern},
        ],
    }


def _common_request(served: str, limits: Limits) -> dict[str, Any]:
    tokens = {"type": "integer", "minimum": 1, "maximum": limits.max_tokens_per_branch}
    return {
        "model": _model_schema(served, limits),
        "max_tokens": nullable({**tokens, "description": "Per-branch cap."}),
        "max_completion_tokens": nullable(
            {**tokens, "description": "Same as max_tokens; wins when both are given."}
        ),
        "reasoning_effort": nullable(
            {
                "type": "string",
                "enum": list(EFFORTS),
                "description": "A thinking budget from the model's table (models.yaml "
                "reasoning_effort); none skips thinking where the model thinks in tags.",
            }
        ),
        "thinking_budget_tokens": nullable(
            {
                "type": "integer",
                "minimum": -1,
                "maximum": limits.max_tokens_per_branch,
                "description": "llama.cpp's thinking budget: -1 none, 0 no thinking; the think "
                "strategy forces the answer at it, others stop each branch there. Wins over "
                "reasoning_effort.",
            }
        ),
        "temperature": nullable({"type": "number", **float_range("temperature")}),
        "top_p": nullable({"type": "number", **float_range("top_p")}),
        "n": nullable({"type": "integer", "minimum": 1, "maximum": limits.max_n}),
        "seed": nullable(_int("seed", limits)),
        "stream": nullable({"type": "boolean"}),
        "stream_options": nullable(json_object({"include_usage": nullable({"type": "boolean"})})),
        "reason": nullable(ref("ReasonOptions")),
    }


def request_schemas(served: str, limits: Limits) -> dict[str, Any]:
    """The components a request body refers to: the two request kinds, a chat message and
    the `reason` extension."""
    text_part = json_object(
        {"type": {"const": "text"}, "text": {"type": "string"}}, ["type", "text"]
    )
    content = {"anyOf": [{"type": "string"}, {"type": "array", "items": text_part, "minItems": 1}]}
    message = json_object(
        {
            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
            "content": content,
            "reasoning_content": nullable(
                {"type": "string", "description": "An earlier turn's trace; not fed back."}
            ),
            "reasoning": nullable({"type": "string", "description": "Same as reasoning_content."}),
        },
        ["role", "content"],
    )
    common = _common_request(served, limits)
    one_prompt = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1}
    return {
        "ChatMessage": message,
        "ChatCompletionRequest": json_object(
            {**common, "messages": {"type": "array", "items": ref("ChatMessage"), "minItems": 1}},
            ["model", "messages"],
            description="The last message must be the user's question.",
        ),
        "CompletionRequest": json_object(
            {**common, "prompt": {"anyOf": [{"type": "string"}, one_prompt]}},
            ["model", "prompt"],
        ),
        "ReasonOptions": reason_options_schema(limits),
    }
