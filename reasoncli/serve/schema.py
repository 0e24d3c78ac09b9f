"""The OpenAPI document `reason serve` publishes at /openapi.json.

Written out here rather than derived from the routes: the routes read raw JSON so that every bad
value becomes an OpenAI-shaped 400 with our wording, not FastAPI's 422. The document is built
from the same declarations the parser checks against (`reasoncli.options`: types, ranges, choices;
`INT_RANGES` resolved with this server's `Limits`; the strategy registry), so the two cannot drift
apart silently; the fuzz test
(tests/test_serve_fuzz.py) holds the server to it. What a schema cannot say (min_tokens at most
max_tokens, n x branches, a prompt that fits --ctx) is a documented 400.
"""

from __future__ import annotations

import re
from typing import Any

from reasoncli.options import SamplingOverrides, StrategyOptions, declared, every_option
from reasoncli.reasoning import EFFORTS
from reasoncli.serve.request import CHOICES, INT_RANGES, MAX_STRING_CHARS, Limits, int_range
from reasoncli.strategies.base import strategy_names

OPENAPI_VERSION = "3.1.0"


def _float_range(name: str) -> dict[str, float]:
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


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
        return {"type": "number", **_float_range(name)}
    return {"type": "string", "maxLength": MAX_STRING_CHARS}


def reason_options_schema(limits: Limits) -> dict[str, Any]:
    """The `reason` extension: the strategy and every strategy option, as the parser takes them."""
    props: dict[str, Any] = {
        "strategy": _nullable({"type": "string", "enum": sorted(strategy_names())}),
    }
    for d in declared(StrategyOptions):
        schema = _option(d.name, d.type, limits)
        props[d.name] = _nullable(schema) if d.optional else schema
    for d in declared(SamplingOverrides):  # given, a sampling value is a value (not null)
        props[d.name] = _option(d.name, d.type, limits)
    return {
        "type": "object",
        "description": "reason's extension: the strategy and its options, named as the CLI flags "
        "with underscores. Options a strategy does not use are accepted and ignored.",
        "properties": props,
        "additionalProperties": False,
    }


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
        "max_tokens": _nullable({**tokens, "description": "Per-branch cap."}),
        "max_completion_tokens": _nullable(
            {**tokens, "description": "Same as max_tokens; wins when both are given."}
        ),
        "reasoning_effort": _nullable(
            {
                "type": "string",
                "enum": list(EFFORTS),
                "description": "A thinking budget from the model's table (models.yaml "
                "reasoning_effort); none skips thinking where the model thinks in tags.",
            }
        ),
        "thinking_budget_tokens": _nullable(
            {
                "type": "integer",
                "minimum": -1,
                "maximum": limits.max_tokens_per_branch,
                "description": "llama.cpp's thinking budget: -1 none, 0 no thinking; the think "
                "strategy forces the answer at it, others stop each branch there. Wins over "
                "reasoning_effort.",
            }
        ),
        "temperature": _nullable({"type": "number", **_float_range("temperature")}),
        "top_p": _nullable({"type": "number", **_float_range("top_p")}),
        "n": _nullable({"type": "integer", "minimum": 1, "maximum": limits.max_n}),
        "seed": _nullable(_int("seed", limits)),
        "stream": _nullable({"type": "boolean"}),
        "stream_options": _nullable(
            {
                "type": "object",
                "properties": {"include_usage": _nullable({"type": "boolean"})},
            }
        ),
        "reason": _nullable(_ref("ReasonOptions")),
    }


def _request_schemas(served: str, limits: Limits) -> dict[str, Any]:
    text_part = {
        "type": "object",
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
        "required": ["type", "text"],
    }
    content = {"anyOf": [{"type": "string"}, {"type": "array", "items": text_part, "minItems": 1}]}
    message = {
        "type": "object",
        "properties": {
            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
            "content": content,
            "reasoning_content": _nullable(
                {"type": "string", "description": "An earlier turn's trace; not fed back."}
            ),
            "reasoning": _nullable({"type": "string", "description": "Same as reasoning_content."}),
        },
        "required": ["role", "content"],
    }
    common = _common_request(served, limits)
    return {
        "ChatMessage": message,
        "ChatCompletionRequest": {
            "type": "object",
            "description": "The last message must be the user's question.",
            "properties": {
                **common,
                "messages": {"type": "array", "items": _ref("ChatMessage"), "minItems": 1},
            },
            "required": ["model", "messages"],
        },
        "CompletionRequest": {
            "type": "object",
            "properties": {
                **common,
                "prompt": {
                    "anyOf": [
                        {"type": "string"},
                        {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 1,
                            "maxItems": 1,
                        },
                    ]
                },
            },
            "required": ["model", "prompt"],
        },
        "ReasonOptions": reason_options_schema(limits),
    }


def _response_schemas(limits: Limits) -> dict[str, Any]:
    integer = {"type": "integer", "minimum": 0}
    usage = {
        "type": "object",
        "properties": {
            "prompt_tokens": integer,
            "completion_tokens": integer,
            "total_tokens": integer,
            "prompt_tokens_details": {
                "type": "object",
                "description": "cached_tokens: prompt tokens reused from the prompt cache.",
                "properties": {"cached_tokens": integer},
                "required": ["cached_tokens"],
            },
            "completion_tokens_details": {
                "type": "object",
                "properties": {"reasoning_tokens": integer},
                "required": ["reasoning_tokens"],
            },
        },
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    }
    optional_text = {"type": ["string", "null"]}
    branch = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "text": {"type": "string"},
            "answer": optional_text,
            "tokens": integer,
            "finish_reason": {"type": "string"},
            "parent": {"type": ["integer", "null"]},
            "thinking": optional_text,
            "thinking_tokens": integer,
            "confidence": {"type": ["number", "null"]},
            "score": {"type": ["number", "null"]},
        },
        "required": ["id", "text", "answer", "tokens", "finish_reason"],
    }
    result = {
        "type": "object",
        "description": "The whole run, as `reason ask --json` prints it.",
        "properties": {
            "strategy": {"type": "string"},
            "answer": optional_text,
            "share": {"type": "number"},
            "votes": {"type": "array", "items": {"type": "object"}},
            "branches": {"type": "array", "items": _ref("Branch")},
            "prompt_tokens": integer,
            "generated_tokens": integer,
            "timings": {"type": "object"},
            "interrupted": {"type": "boolean"},
            "stop_reason": optional_text,
        },
        "required": ["strategy", "answer", "branches", "prompt_tokens", "generated_tokens"],
    }
    reason = {
        "type": "object",
        "properties": {
            "strategy": {"type": "string"},
            "results": {"type": "array", "items": _ref("Result")},
        },
        "required": ["strategy", "results"],
    }
    finish = {
        "type": "string",
        "enum": ["stop", "length"],
        "description": '"length": the kept branch hit max_tokens or the request\'s token '
        "ceiling, or the run was interrupted (server stopping); the answer may be cut.",
    }
    choice_base = {"index": integer, "finish_reason": finish, "logprobs": {"type": "null"}}
    chat_choice = {
        "type": "object",
        "properties": {
            **choice_base,
            "message": {
                "type": "object",
                "properties": {
                    "role": {"const": "assistant"},
                    "content": {"type": "string", "description": "The answer, without the trace."},
                    "reasoning_content": {
                        "type": "string",
                        "description": "The kept branch's <think> trace (thinking models only).",
                    },
                    "reasoning": {"type": "string", "description": "Same as reasoning_content."},
                },
                "required": ["role", "content"],
            },
        },
        "required": ["index", "message", "finish_reason"],
    }
    text_choice = {
        "type": "object",
        "properties": {**choice_base, "text": {"type": "string"}},
        "required": ["index", "text", "finish_reason"],
    }

    def completion(kind: str, choice: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": kind},
                "created": integer,
                "model": {"type": "string"},
                "choices": {"type": "array", "items": choice, "minItems": 1},
                "usage": _ref("Usage"),
                "reason": _ref("ReasonResults"),
            },
            "required": ["id", "object", "created", "model", "choices", "usage", "reason"],
        }

    error = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": optional_text,
                    "code": optional_text,
                },
                "required": ["message", "type", "param", "code"],
            }
        },
        "required": ["error"],
    }
    model = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "created": integer,
            "owned_by": {"type": "string"},
            "limits": _ref("Limits"),
        },
        "required": ["id", "object", "created", "owned_by", "limits"],
    }
    limit_props = {name: {"type": "integer", "minimum": 1} for name in limits.to_json()}
    return {
        "Usage": usage,
        "Branch": branch,
        "Result": result,
        "ReasonResults": reason,
        "ChatCompletion": completion("chat.completion", chat_choice),
        "TextCompletion": completion("text_completion", text_choice),
        "Error": error,
        "Model": model,
        "ModelList": {
            "type": "object",
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": _ref("Model")},
            },
            "required": ["object", "data"],
        },
        "Limits": {
            "type": "object",
            "properties": limit_props,
            "required": list(limit_props),
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string"},
                "model": {"type": "string"},
                "requests_in_flight": integer,
                "branch_slots_free": {"type": "integer"},
                "branch_slots": integer,
                "decode_rounds": integer,
                "shared_rounds": integer,
                "mixed_rounds": {
                    **integer,
                    "description": "Rounds that decoded a newly admitted request's prompt "
                    "tokens in the same batch as running requests' branches.",
                },
                "short_rounds": {
                    **integer,
                    "description": "Rounds that started without a running request that had "
                    "tokens to decode (it asked too late to join); it gets a round of its own.",
                },
                "round_seconds": {"type": "number"},
                "prompt_cache": {
                    "type": "boolean",
                    "description": "Whether runs reuse cached prompt prefixes "
                    "(reason serve --no-prompt-cache turns it off).",
                },
                "prompt_cache_prompts": integer,
                "prompt_cache_hits": integer,
                "prompt_tokens_cached": integer,
                "prompt_tokens_prefilled": integer,
                "engine": {
                    "type": "object",
                    "description": "The engine process: pid, state (starting, ready, "
                    "restarting, stopped), restarts, and how the last one ended.",
                    "properties": {
                        "pid": {"type": ["integer", "null"]},
                        "state": {"type": "string"},
                        "restarts": integer,
                        "last_exit": optional_text,
                    },
                },
                "limits": _ref("Limits"),
            },
            "required": ["status", "model", "limits"],
        },
    }


def _error_responses(auth: bool) -> dict[str, Any]:
    body = {"application/json": {"schema": _ref("Error")}}
    retry = {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    }
    out: dict[str, Any] = {
        "400": {"description": "A value out of range, of the wrong type, or malformed JSON; "
                "options that do not fit together; a prompt that cannot fit --ctx.",
                "content": body},
        "404": {"description": "A model this server does not serve.", "content": body},
        "413": {"description": "A body over --max-body-bytes.", "content": body},
        "429": {"description": "More than --queue requests waiting.", "content": body,
                "headers": retry},
        "503": {"description": "No branch slots in --queue-timeout, the request cancelled by a "
                "shutdown, or the engine process died (the message says how).",
                "content": body, "headers": retry},
        "500": {"description": "A failure no rule foresaw (a bug).", "content": body},
    }  # fmt: skip
    if auth:
        out["401"] = {"description": "A missing or wrong API key.", "content": body}
    return out


def openapi_document(served: str, limits: Limits, *, auth: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document for this server's model, limits and key setting."""
    errors = _error_responses(auth)
    security: list[dict[str, list[str]]] = [{"bearer": []}] if auth else []

    def post(request: str, response: str, summary: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "security": security,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(request)}},
                },
                "responses": {
                    "200": {
                        "description": "The answer; with stream: true, server-sent events "
                        "(progress as `:` comment lines, then chunks and `data: [DONE]`).",
                        "content": {
                            "application/json": {"schema": _ref(response)},
                            "text/event-stream": {
                                "schema": {
                                    "description": "Each event's data: a chunk (or an error "
                                    "object) as JSON, then the literal [DONE].",
                                    "anyOf": [{"type": "object"}, {"const": "[DONE]"}],
                                }
                            },
                        },
                    },
                    **errors,
                },
            }
        }

    v1_errors = {k: v for k, v in errors.items() if k in ("401", "500")}
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "reason serve",
            "version": "1",
            "description": "OpenAI-compatible API with test-time compute strategies; the "
            "`reason` field of a request and response is reason's extension.",
        },
        "paths": {
            "/v1/chat/completions": post(
                "ChatCompletionRequest", "ChatCompletion", "Answer a chat with a strategy"
            ),
            "/v1/completions": post(
                "CompletionRequest", "TextCompletion", "Answer a prompt with a strategy"
            ),
            "/v1/models": {
                "get": {
                    "summary": "The model, and a name per strategy",
                    "security": security,
                    "responses": {
                        "200": {
                            "description": "Served names, each with the request limits.",
                            "content": {"application/json": {"schema": _ref("ModelList")}},
                        },
                        **v1_errors,
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Load, batching counters and the request limits (no key needed)",
                    "responses": {
                        "200": {
                            "description": "The server is up.",
                            "content": {"application/json": {"schema": _ref("Health")}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {**_request_schemas(served, limits), **_response_schemas(limits)},
        },
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc
