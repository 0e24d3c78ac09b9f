"""One connection to a server: its event loop thread, HTTP client, and request dialect.

The backend outlives engines (a bench run opens one engine per question), so connections,
the `n` discovery and the tokenize endpoint are found once per session.

Two dialects: with a prompt template, `/completions` on the rendered prompt text, which can
continue any branch from a prefix; without one, `/chat/completions` on messages, where the
server applies its own template and branches cannot be continued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

from reasoncli.engine.branch_state import TokenLogprobs
from reasoncli.engine.protocols import ChatMessages, Prompt, RemotePrompt
from reasoncli.engine.sampling import Sampling
from reasoncli.remote.client import RemoteConfig, stream_timeout, timeout_for

CHARS_PER_TOKEN = 4  # the estimate used when the server cannot count tokens
CHAT_THINK_TAGS = ("<think>", "</think>")


class RemoteBackend:
    """The event loop thread, the pooled async client, and what was learnt about the server."""

    def __init__(
        self,
        config: RemoteConfig,
        *,
        chat_api: bool,
        honours_n: bool = False,
        max_n: int | None = None,
    ) -> None:
        self.config = config
        self.chat_api = chat_api
        self.use_n = honours_n if config.use_n is None else config.use_n
        self.max_n = max_n  # the most `n` one request may carry (llama-server's slots)
        # Sent with chat requests (see `thinking_fields`): None sends nothing.
        self.thinking_budget: int | None = None
        self.think_tags: tuple[str, ...] = CHAT_THINK_TAGS  # around a thought sent apart
        self._tokenizer: str | None = None  # which tokenize endpoint works; "" for none
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client: Any = self._call(self._open_client())

    async def _open_client(self) -> Any:
        import httpx2

        limit = self.config.max_concurrency
        return httpx2.AsyncClient(
            timeout=stream_timeout(self.config),
            limits=httpx2.Limits(max_connections=limit, max_keepalive_connections=limit),
        )

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, coro: Coroutine[Any, Any, None]) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        """Cancel what is still running, let it unwind, close connections, stop the loop."""
        if not self._thread.is_alive():
            return
        try:
            self._call_with_timeout(self._shutdown(), 5.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()

    def _call_with_timeout(self, coro: Coroutine[Any, Any, Any], timeout: float) -> None:
        try:
            asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)
        except Exception:
            pass  # closing must not hide the error or interrupt that got us here

    async def _shutdown(self) -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()
        await self._loop.shutdown_asyncgens()

    # -- requests ---------------------------------------------------------------------------
    def request_body(
        self,
        prompt: RemotePrompt,
        prefix: str,
        sampling: Sampling,
        *,
        max_tokens: int,
        logprobs: int,
        n: int = 1,
        stop: tuple[str, ...] = (),
    ) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) for a streaming request that continues `prompt` + `prefix`."""
        body: dict[str, Any] = {"model": self.config.model, "stream": True}
        if prompt.text is not None:
            path = "/completions"
            body["prompt"] = prompt.text + prefix
            if logprobs:
                body["logprobs"] = logprobs
        else:
            path = "/chat/completions"
            body["messages"] = list(prompt.messages or ())
            if logprobs:
                body.update(logprobs=True, top_logprobs=logprobs)
            body.update(thinking_fields(self.thinking_budget))
        body["max_tokens"] = max(1, max_tokens)
        body.update(sampling_fields(sampling))
        if n > 1:
            body["n"] = n
        if stop:
            body["stop"] = list(stop)
        return path, body

    def parse_choice(self, choice: dict[str, Any]) -> tuple[str, list[TokenLogprobs]]:
        """The new text of one streamed choice and its per-token log-probabilities."""
        lp = choice.get("logprobs")
        if self.chat_api:
            text = (choice.get("delta") or {}).get("content") or ""
            return text, _chat_logprobs(lp)
        return choice.get("text") or "", _completion_logprobs(lp)

    def with_thought(self, choice: dict[str, Any], text: str, open_: bool) -> tuple[str, bool]:
        """Chat servers that parse a thinking model's output stream the thought apart
        (`reasoning_content`: llama-server, DeepSeek; `reasoning`: vLLM, ollama). Put it back in
        the branch text between the think tags, as the local engine has it, so that it is shown,
        counted and kept out of the answer. `open_`: a thought of this branch is open; returns
        (text, whether one is open after it)."""
        delta = (choice.get("delta") or {}) if self.chat_api else {}
        thought = delta.get("reasoning_content") or delta.get("reasoning") or ""
        start, end = self.think_tags
        out = ""
        if thought:
            out, open_ = (thought if open_ else start + thought), True
        if text and open_:
            out, open_ = out + end, False
        return out + text, open_

    # -- counting tokens ----------------------------------------------------------------------
    def count_tokens(self, text: str) -> int | None:
        """Tokens in `text` by the server's tokenizer (llama_cpp.server, llama-server, vLLM
        endpoints, found once); None when the server has none."""
        import httpx2

        root = self.config.root.removesuffix("/v1")
        endpoints = {
            "llama-cpp-python": (f"{root}/extras/tokenize", {"input": text}),
            "llama-server": (f"{root}/tokenize", {"content": text}),
            "vllm": (f"{root}/tokenize", {"model": self.config.model, "prompt": text}),
        }
        order = [self._tokenizer] if self._tokenizer else list(endpoints)
        if self._tokenizer == "":
            return None
        for name in order:
            url, body = endpoints[name]
            try:
                response = httpx2.post(
                    url, json=body, headers=self.config.headers(), timeout=timeout_for(self.config)
                )
                tokens = response.json().get("tokens") if response.status_code == 200 else None
            except Exception:
                tokens = None
            if isinstance(tokens, list):
                self._tokenizer = name
                return len(tokens)
        self._tokenizer = ""
        return None

    def prompt(self, prompt: Prompt) -> RemotePrompt:
        text = str(prompt)
        counted = self.count_tokens(text)
        n = counted if counted is not None else max(1, len(text) // CHARS_PER_TOKEN)
        if isinstance(prompt, ChatMessages):
            return RemotePrompt(None, prompt.messages, n, estimated=True)
        return RemotePrompt(prompt, None, n, estimated=counted is None)


def thinking_fields(budget: int | None) -> dict[str, Any]:
    """A thinking budget for a server that applies its own chat template, where `reason` cannot
    force one: llama.cpp's `thinking_budget_tokens`, and for 0 the `enable_thinking: false`
    template switch (Qwen3-style templates; llama.cpp and vLLM pass it to the template)."""
    if budget is None:
        return {}
    fields: dict[str, Any] = {"thinking_budget_tokens": budget}
    if budget == 0:
        fields["chat_template_kwargs"] = {"enable_thinking": False}
    return fields


def sampling_fields(s: Sampling) -> dict[str, Any]:
    """OpenAI fields plus the extensions llama.cpp, vLLM and SGLang all accept."""
    if s.greedy:
        fields: dict[str, Any] = {"temperature": 0.0, "seed": s.seed}
    else:
        fields = {"temperature": s.temperature, "top_p": s.top_p, "seed": s.seed}
        if s.top_k > 0:
            fields["top_k"] = s.top_k
        if s.min_p > 0:
            fields["min_p"] = s.min_p
    fields["repeat_penalty"] = s.repeat_penalty  # llama_cpp.server's default is 1.1, not off
    if s.repeat_penalty != 1.0:
        fields["repetition_penalty"] = s.repeat_penalty  # vLLM's name
    return fields


def _confidences(top: dict[str, float] | list[Any] | None) -> tuple[float, ...]:
    if isinstance(top, dict):
        values = [float(v) for v in top.values() if v is not None]
    else:
        values = [float(t["logprob"]) for t in top or () if t.get("logprob") is not None]
    return tuple(sorted(values, reverse=True))


def _completion_logprobs(lp: Any) -> list[TokenLogprobs]:
    if not isinstance(lp, dict):
        return []
    chosen = lp.get("token_logprobs") or []
    tops = lp.get("top_logprobs") or [None] * len(chosen)
    out = []
    for value, top in zip(chosen, tops, strict=False):
        values = _confidences(top)
        out.append(TokenLogprobs(-1, float(value or 0.0), (-1,) * len(values), values))
    return out


def _chat_logprobs(lp: Any) -> list[TokenLogprobs]:
    if not isinstance(lp, dict):
        return []
    out = []
    for item in lp.get("content") or ():
        values = _confidences(item.get("top_logprobs"))
        out.append(
            TokenLogprobs(-1, float(item.get("logprob") or 0.0), (-1,) * len(values), values)
        )
    return out
