"""The OpenAPI document `reason serve` publishes at /openapi.json.

Written out here rather than derived from the routes: the routes read raw JSON so that every bad
value becomes an OpenAI-shaped 400 with our wording, not FastAPI's 422. The request half
(`serve/request_schema.py`) is built from the same declarations the parser checks against, so
the two cannot drift apart silently; the fuzz test (tests/test_serve_fuzz.py) holds the server
to the whole document. What a schema cannot say (min_tokens at most max_tokens, n x branches, a
prompt that fits --ctx) is a documented 400.
"""

from __future__ import annotations

from typing import Any

from reasoncli.serve.request import Limits
from reasoncli.serve.request_schema import json_object, ref, request_schemas

OPENAPI_VERSION = "3.1.0"


def _response_schemas(limits: Limits) -> dict[str, Any]:
    integer = {"type": "integer", "minimum": 0}
    usage = json_object(
        {
            "prompt_tokens": integer,
            "completion_tokens": integer,
            "total_tokens": integer,
            "prompt_tokens_details": json_object(
                {"cached_tokens": integer},
                ["cached_tokens"],
                description="cached_tokens: prompt tokens reused from the prompt cache.",
            ),
            "completion_tokens_details": json_object(
                {"reasoning_tokens": integer}, ["reasoning_tokens"]
            ),
        },
        ["prompt_tokens", "completion_tokens", "total_tokens"],
    )
    optional_text = {"type": ["string", "null"]}
    branch = json_object(
        {
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
        ["id", "text", "answer", "tokens", "finish_reason"],
    )
    result = json_object(
        {
            "strategy": {"type": "string"},
            "answer": optional_text,
            "share": {"type": "number"},
            "votes": {"type": "array", "items": {"type": "object"}},
            "branches": {"type": "array", "items": ref("Branch")},
            "prompt_tokens": integer,
            "generated_tokens": integer,
            "timings": {"type": "object"},
            "interrupted": {"type": "boolean"},
            "stop_reason": optional_text,
        },
        ["strategy", "answer", "branches", "prompt_tokens", "generated_tokens"],
        description="The whole run, as `reason ask --json` prints it.",
    )
    reason = json_object(
        {"strategy": {"type": "string"}, "results": {"type": "array", "items": ref("Result")}},
        ["strategy", "results"],
    )
    finish = {
        "type": "string",
        "enum": ["stop", "length"],
        "description": '"length": the kept branch hit max_tokens or the request\'s token '
        "ceiling, or the run was interrupted (server stopping); the answer may be cut.",
    }
    choice_base = {"index": integer, "finish_reason": finish, "logprobs": {"type": "null"}}
    message = json_object(
        {
            "role": {"const": "assistant"},
            "content": {"type": "string", "description": "The answer, without the trace."},
            "reasoning_content": {
                "type": "string",
                "description": "The kept branch's <think> trace (thinking models only).",
            },
            "reasoning": {"type": "string", "description": "Same as reasoning_content."},
        },
        ["role", "content"],
    )
    chat_choice = json_object(
        {**choice_base, "message": message}, ["index", "message", "finish_reason"]
    )
    text_choice = json_object(
        {**choice_base, "text": {"type": "string"}}, ["index", "text", "finish_reason"]
    )

    def completion(kind: str, choice: dict[str, Any]) -> dict[str, Any]:
        return json_object(
            {
                "id": {"type": "string"},
                "object": {"const": kind},
                "created": integer,
                "model": {"type": "string"},
                "choices": {"type": "array", "items": choice, "minItems": 1},
                "usage": ref("Usage"),
                "reason": ref("ReasonResults"),
            },
            ["id", "object", "created", "model", "choices", "usage", "reason"],
        )

    error_fields = {
        "message": {"type": "string"},
        "type": {"type": "string"},
        "param": optional_text,
        "code": optional_text,
    }
    error = json_object({"error": json_object(error_fields, list(error_fields))}, ["error"])
    model_fields = {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": integer,
        "owned_by": {"type": "string"},
        "limits": ref("Limits"),
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
        "Model": json_object(model_fields, list(model_fields)),
        "ModelList": json_object(
            {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}},
            ["object", "data"],
        ),
        "Limits": json_object(limit_props, list(limit_props)),
        "Health": json_object(
            {
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
                "round_seconds": {
                    "type": "number",
                    "description": "Time inside decode rounds: llama_decode and the sampling "
                    "and bookkeeping around it.",
                },
                "decode_seconds": {
                    "type": "number",
                    "description": "Time inside llama_decode alone; round_seconds minus this "
                    "is the engine's own work.",
                },
                "decoded_rows": {
                    **integer,
                    "description": "Prompt and branch tokens llama_decode has decoded.",
                },
                "prompt_cache": {
                    "type": "boolean",
                    "description": "Whether runs reuse cached prompt prefixes "
                    "(reason serve --no-prompt-cache turns it off).",
                },
                "prompt_cache_prompts": integer,
                "prompt_cache_hits": integer,
                "prompt_tokens_cached": integer,
                "prompt_tokens_prefilled": integer,
                "engine": json_object(
                    {
                        "pid": {"type": ["integer", "null"]},
                        "state": {"type": "string"},
                        "restarts": integer,
                        "last_exit": optional_text,
                    },
                    description="The engine process: pid, state (starting, ready, "
                    "restarting, stopped), restarts, and how the last one ended.",
                ),
                "limits": ref("Limits"),
            },
            ["status", "model", "limits"],
        ),
    }


def _error_responses(auth: bool) -> dict[str, Any]:
    body = {"application/json": {"schema": ref("Error")}}
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
                    "content": {"application/json": {"schema": ref(request)}},
                },
                "responses": {
                    "200": {
                        "description": "The answer; with stream: true, server-sent events "
                        "(progress as `:` comment lines, then chunks and `data: [DONE]`).",
                        "content": {
                            "application/json": {"schema": ref(response)},
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
                            "content": {"application/json": {"schema": ref("ModelList")}},
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
                            "content": {"application/json": {"schema": ref("Health")}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {**request_schemas(served, limits), **_response_schemas(limits)},
        },
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc
