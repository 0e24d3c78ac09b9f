"""Results as OpenAI-shaped JSON: completions, chat completions, stream chunks and errors.

`content` is the final answer, what `reason ask` prints on stdout; when no answer could be
extracted (an open-ended question) it is the text of the branch the strategy kept, less its
`<think>` trace. That trace goes in `reasoning_content` (llama.cpp, DeepSeek) and `reasoning`
(vLLM, ollama, OpenRouter): both, as clients read one or the other. Usage counts every branch's
tokens (`reasoning_tokens` those of the traces), and the whole result (votes, branches,
timings) rides along in `reason`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

from reasoncli.results import BranchResult, Result
from reasoncli.strategies.parallel import split_thinking


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def winner(result: Result) -> BranchResult | None:
    """The branch whose answer won (the first to give it), else the first that ended on its own."""
    if result.answer is not None:
        for b in result.branches:
            if b.answer == result.answer:
                return b
    natural = [b for b in result.branches if b.finish_reason in ("eos", "stop")]
    candidates = natural or result.branches
    return candidates[0] if candidates else None


def content(result: Result, tags: tuple[str, str] | None = None) -> str:
    if result.answer is not None:
        return result.answer
    best = winner(result)
    if best is None:
        return ""
    if best.thinking is None:
        return best.text.strip()
    if tags and tags[1] in best.text:  # the text after the trace; the trace has its own field
        return split_thinking(best.text, tags)[1].strip()
    return ""  # cut while still thinking


def reasoning(result: Result) -> str | None:
    """The kept branch's trace, None when it wrote none."""
    best = winner(result)
    return best.thinking if best is not None and best.thinking else None


def reasoning_fields(text: str | None) -> dict[str, str]:
    """The trace under both names clients read; nothing when there is none."""
    return {"reasoning_content": text, "reasoning": text} if text else {}


def finish_reason(result: Result) -> str:
    """ "length" when the answer was cut: the kept branch hit max_tokens (or the request's token
    ceiling), or the run was interrupted (client gone, server stopping); else "stop"."""
    best = winner(result)
    if result.interrupted:
        return "length"
    return "length" if best is not None and best.finish_reason == "length" else "stop"


def usage(results: Sequence[Result], cached: int = 0) -> dict[str, Any]:
    """OpenAI's usage; `cached`: prompt tokens the prompt cache did not decode, as OpenAI's
    prompt_tokens_details.cached_tokens (at most prompt_tokens)."""
    prompt = sum(r.prompt_tokens for r in results)
    generated = sum(r.generated_tokens for r in results)
    thinking = sum(b.thinking_tokens for r in results for b in r.branches)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": generated,
        "total_tokens": prompt + generated,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
        "completion_tokens_details": {"reasoning_tokens": min(thinking, generated)},
    }


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as null: they are not JSON, and a branch's confidence is
    NaN when it has no tokens to judge."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def result_json(result: Result) -> dict[str, Any]:
    return json_safe(result.to_json())  # type: ignore[no-any-return]


def reason_field(strategy: str, results: Sequence[Result]) -> dict[str, Any]:
    return {"strategy": strategy, "results": [result_json(r) for r in results]}


def completion(
    rid: str,
    model: str,
    strategy: str,
    results: Sequence[Result],
    tags: tuple[str, str] | None = None,
    *,
    chat: bool,
    cached: int = 0,
) -> dict[str, Any]:
    """A chat completion (a `message` a choice) or a text completion (a `text`): one choice
    per result."""

    def body(r: Result) -> dict[str, Any]:
        if not chat:
            return {"text": content(r, tags)}
        fields = {
            "role": "assistant",
            "content": content(r, tags),
            **reasoning_fields(reasoning(r)),
        }
        return {"message": fields}

    return {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": i, **body(r), "finish_reason": finish_reason(r), "logprobs": None}
            for i, r in enumerate(results)
        ],
        "usage": usage(results, cached),
        "reason": reason_field(strategy, results),
    }


def chunk(
    rid: str,
    model: str,
    *,
    chat: bool,
    index: int = 0,
    text: str | None = None,
    role: bool = False,
    finish: str | None = None,
    extra: dict[str, Any] | None = None,
    thinking: str | None = None,
) -> dict[str, Any]:
    """One streamed chunk; chat chunks carry a `delta` (trace text in `reasoning_content` and
    `reasoning`), completion chunks `text`."""
    if chat:
        delta: dict[str, Any] = {"role": "assistant"} if role else {}
        delta.update(reasoning_fields(thinking))
        if text is not None:
            delta["content"] = text
        choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish}
    else:
        choice = {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}
    data: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
    if extra:
        data.update(extra)
    return data


def usage_chunk(
    rid: str, model: str, *, chat: bool, results: Sequence[Result], cached: int = 0
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage(results, cached),
    }


def sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(json_safe(data), ensure_ascii=False)
    return f"data: {payload}\n\n"


def sse_comment(data: dict[str, Any]) -> str:
    """Branch progress as an SSE comment: SSE clients (the openai package too) skip comments."""
    return f": {json.dumps(json_safe(data), ensure_ascii=False)}\n\n"
