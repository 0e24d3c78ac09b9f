"""The remote engine: the branch engine's interface, served by an OpenAI-compatible server.

Each branch is a streaming request; requests run concurrently on the backend's event loop,
at most `max_concurrency` at a time. Strategies call the same `add_branch` / `fork` /
`inject` / `finish` / `release` / `step` as on the local engine, so every strategy runs
unchanged.

- A fork or an injected text continues a branch by sending the prompt plus the branch's text
  so far as a completion prompt. Branches of one question share that prefix byte for byte,
  so the server's prefix cache hits.
- Sibling branches started together from the prompt go out as one request with `n` when the
  server honours it (vLLM, SGLang, llama-server with slots for them); the first response that
  ignores `n` turns it off, and so does a refused `n` request whose branches alone go through.
- A chat server's thought sent apart from the content (`reasoning_content`, `reasoning`) goes
  back into the branch text between think tags, as the local engine has it.
- Stop strings are matched here, on the streamed text, and the request is cancelled: that
  tells a stop string from an end-of-sequence, which the API does not.
- A request that fails with 429/5xx, a dropped stream or a stall past the timeout is retried
  with backoff, continuing from the text already received. A branch whose retries run out
  ends with finish reason "failed" and its error; the other branches go on.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

from reasoncli.engine.branch_state import FAILED, Branch, BranchRoster, TokenEvent
from reasoncli.engine.protocols import RemotePrompt
from reasoncli.engine.sampling import Sampling
from reasoncli.errors import ProtocolError, ResourceError, UsageError
from reasoncli.remote.backend import RemoteBackend
from reasoncli.remote.client import RequestFailed, backoff_s, stream_chunks

UNKNOWN_TOKEN = -1  # the API streams text, not token ids
MAX_N = 64
N_PROBE_CHUNKS = 8  # chunks of an `n` request with only choice 0 in them: `n` was ignored


@dataclass
class _Request:
    """One HTTP request serving one branch, or several siblings through `n`."""

    branches: list[Branch]
    gens: list[int]
    body: dict[str, Any]
    path: str
    future: Future[None] | None = None
    started: set[int] = field(default_factory=set)  # choice indexes that sent anything
    chunks: int = 0


@dataclass
class RemoteStats:
    requests: int = 0
    retries: int = 0
    failed: int = 0
    n_requests: int = 0


class RemoteEngine(BranchRoster):
    """Branches as concurrent streaming requests; see the module docstring."""

    def __init__(
        self,
        backend: RemoteBackend,
        prompt: RemotePrompt,
        *,
        max_branches: int,
        logprobs: int = 0,
    ) -> None:
        self.backend = backend
        self.prompt = prompt
        self.top_logprobs = logprobs
        self.max_branches = max_branches
        self.stats = RemoteStats()
        # The server decodes the prompt, not this process: both counters stay 0.
        self.prompt_tokens_decoded = 0
        self.decode_calls = 0
        self.errors: dict[int, str] = {}
        self._branches: list[Branch] = []
        self._slots = max_branches
        self._gen: dict[int, int] = {}
        self._inflight: dict[int, _Request] = {}  # branch id -> its request
        self._attempts: dict[int, int] = {}
        self._retry_at: dict[int, float] = {}  # branch id -> backoff before its next request
        self._thinking: set[int] = set()  # branch ids inside a thought the server sent apart
        self._n_doubt: set[int] = set()  # siblings of a refused `n` request, now sent alone
        self._inbox: queue.Queue[tuple[str, _Request, Any]] = queue.Queue()
        self._sem = asyncio.Semaphore(backend.config.max_concurrency)
        self._closed = False

    # -- the branch engine's interface -----------------------------------------------------
    @property
    def prompt_tokens(self) -> RemotePrompt:
        return self.prompt

    @property
    def capacity(self) -> int:
        return self._slots

    @property
    def in_use(self) -> int:
        return self.max_branches - self._slots

    def add_branch(self, sampling: Sampling, max_tokens: int, stop: Iterable[str] = ()) -> Branch:
        self._take_slot()
        b = Branch(
            id=len(self._branches),
            seq=len(self._branches),
            sampling=sampling,
            max_tokens=max_tokens,
            stop=tuple(stop),
        )
        return self._register(b)

    def fork(
        self,
        parent: Branch,
        sampling: Sampling | None = None,
        max_tokens: int | None = None,
        stop: Iterable[str] | None = None,
    ) -> Branch:
        parent.check_held("forked")
        self._need_text("continuing a branch from a prefix")
        self._take_slot()
        n = len(self._branches)
        child = parent.child(n, n, sampling, max_tokens, stop)
        if parent.finish_reason in ("eos", FAILED):
            child.finish_reason = parent.finish_reason  # nothing left to continue
        return self._register(child)

    def inject(
        self,
        branch: Branch,
        text: str,
        *,
        max_tokens: int | None = None,
        stop: Iterable[str] | None = None,
    ) -> list[int]:
        """Append forced text and continue the branch from it with a new request."""
        branch.check_held()
        self._need_text("appending forced text to a branch")
        self._cancel(branch)
        n_forced = self.backend.count_tokens(text) or max(1, len(text) // 4)
        branch.force(text, n_forced, max_tokens, stop)
        return []

    def finish(self, branch: Branch, reason: str = "stopped") -> None:
        if not branch.done:
            branch.finish_reason = reason
        self._cancel(branch)

    def release(self, branch: Branch) -> None:
        self.finish(branch)
        if branch.seq >= 0:
            branch.seq = -1
            self._slots += 1

    def step(self) -> list[TokenEvent]:
        """Start requests for branches that need one, wait for news, and apply all of it."""
        self._launch()
        events: list[TokenEvent] = []
        if not self._inflight:
            backoffs = [at for i, at in self._retry_at.items() if not self._branches[i].done]
            if backoffs:  # only backoffs left: sleep until the first one is over
                time.sleep(max(0.0, min(backoffs) - time.monotonic()))
            return events
        while True:
            try:
                message = self._inbox.get(timeout=0.05)
                break
            except queue.Empty:
                self._launch()  # a retry's backoff may have run out
        self._apply(message, events)
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return events
            self._apply(message, events)

    def run(self) -> Iterator[list[TokenEvent]]:
        while self.live:
            yield self.step()

    def request_counts(self) -> dict[str, int]:
        return asdict(self.stats)

    def close(self) -> None:
        """Cancel whatever is still in flight; the backend (and its connections) stay open."""
        if self._closed:
            return
        self._closed = True
        for request in {id(r): r for r in self._inflight.values()}.values():
            if request.future is not None:
                request.future.cancel()
        self._inflight.clear()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- launching --------------------------------------------------------------------------
    def _take_slot(self) -> None:
        if self._slots <= 0:
            raise ResourceError(
                f"all {self.max_branches} branch slots are in use; release a branch first"
            )
        self._slots -= 1

    def _register(self, b: Branch) -> Branch:
        if b.n_tokens >= b.max_tokens and not b.done:
            b.finish_reason = "length"
        self._gen[b.id] = 0
        self._branches.append(b)
        return b

    def _need_text(self, what: str) -> None:
        if self.prompt.text is None:
            raise UsageError(
                f"{what} needs the prompt as text, but no prompt template is known for "
                f"{self.backend.config.model!r}; give the entry a chat_template or template_from "
                "in models.yaml (llama-server reports its own)"
            )

    def _waiting(self) -> list[Branch]:
        now = time.monotonic()
        return [
            b
            for b in self._branches
            if not b.done and b.id not in self._inflight and self._retry_at.get(b.id, 0) <= now
        ]

    def _launch(self) -> None:
        waiting = self._waiting()
        if not waiting:
            return
        fresh = [
            b
            for b in waiting
            if not b.text and b.id not in self._attempts and b.id not in self._n_doubt
        ]
        groups: list[list[Branch]] = []
        if self.backend.use_n and len(fresh) > 1:
            by_key: dict[tuple[Any, ...], list[Branch]] = {}
            for b in fresh:
                key = (_without_seed(b.sampling), b.max_tokens, b.stop)
                by_key.setdefault(key, []).append(b)
            size = min(MAX_N, self.backend.max_n or MAX_N)
            for siblings in by_key.values():
                for i in range(0, len(siblings), size):
                    groups.append(siblings[i : i + size])
            grouped = {b.id for g in groups for b in g}
            groups += [[b] for b in waiting if b.id not in grouped]
        else:
            groups = [[b] for b in waiting]
        for group in groups:
            self._submit(group)

    def _submit(self, group: list[Branch]) -> None:
        lead = group[0]
        path, body = self.backend.request_body(
            self.prompt,
            lead.text,
            lead.sampling,
            max_tokens=lead.max_tokens - lead.n_tokens,
            logprobs=self.top_logprobs,
            n=len(group),
            stop=lead.stop if len(group) > 1 else (),
        )
        request = _Request(
            branches=group,
            gens=[self._gen[b.id] for b in group],
            body=body,
            path=path,
        )
        for b in group:
            self._retry_at.pop(b.id, None)
        for b in group:
            self._inflight[b.id] = request
        self.stats.requests += 1
        self.stats.n_requests += len(group) > 1
        request.future = self.backend.submit(self._stream(request))

    async def _stream(self, request: _Request) -> None:
        """Runs on the backend's loop: forward every parsed chunk to the engine's inbox."""
        post = self._inbox.put
        try:
            async with self._sem:
                async for chunk in stream_chunks(
                    self.backend.client, self.backend.config, request.path, request.body
                ):
                    post(("chunk", request, chunk))
        except RequestFailed as exc:
            post(("failed", request, exc))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected payload: fail the branch, say why
            failure = RequestFailed(f"{type(exc).__name__}: {exc}", retryable=False)
            post(("failed", request, failure))
            return
        post(("closed", request, None))

    # -- applying what arrived ------------------------------------------------------------
    def _current(self, request: _Request, index: int) -> Branch | None:
        """The branch a choice index feeds, unless it moved on (finished, re-requested)."""
        if index >= len(request.branches):
            return None
        b = request.branches[index]
        stale = self._gen[b.id] != request.gens[index] or self._inflight.get(b.id) is not request
        return None if b.done or stale else b

    def _apply(self, message: tuple[str, _Request, Any], events: list[TokenEvent]) -> None:
        kind, request, payload = message
        if kind == "chunk":
            request.chunks += 1
            for choice in payload.get("choices") or ():
                index = int(choice.get("index", 0))
                b = self._current(request, index)
                if b is not None:
                    request.started.add(index)
                    if b.id in self._n_doubt:  # alone it went through: `n` was what failed
                        self.backend.use_n = False
                        self._n_doubt.clear()
                    self._on_choice(b, choice, events)
            if len(request.branches) > 1 and request.chunks == N_PROBE_CHUNKS:
                # Servers that honour `n` interleave the choices from the start.
                ignored = [i for i in range(len(request.branches)) if i not in request.started]
                if ignored and request.started == {0}:
                    self._drop_n(request, ignored)
        elif kind == "failed":
            self._on_failure(request, payload, events)
        else:
            self._on_closed(request, events)

    def _on_choice(self, b: Branch, choice: dict[str, Any], events: list[TokenEvent]) -> None:
        text, logprobs = self.backend.parse_choice(choice)
        text, thinking = self.backend.with_thought(choice, text, b.id in self._thinking)
        (self._thinking.add if thinking else self._thinking.discard)(b.id)
        if self.top_logprobs and text and not logprobs:
            raise ProtocolError(
                f"{self.backend.config.root} sent no log-probabilities; this strategy needs "
                "them (use vote, or a server that returns logprobs)"
            )
        n_new = len(logprobs) if logprobs else (1 if text else 0)
        b.tokens.extend([UNKNOWN_TOKEN] * n_new)
        b.logprobs.extend(logprobs)
        finished = False
        if text:
            text = b.take_text(text)
            finished = b.finish_reason == "stop"
        reason = choice.get("finish_reason")
        if not finished and b.n_tokens >= b.max_tokens:
            b.finish_reason, finished = "length", True
        elif not finished and reason:
            stop_reason = choice.get("stop_reason")
            if reason == "length":
                b.finish_reason = "length"
            elif isinstance(stop_reason, str) and stop_reason in b.stop:
                b.finish_reason, b.stop_hit = "stop", stop_reason  # vLLM names the stop string
            else:
                b.finish_reason = "eos"
            finished = True
        if b.finish_reason == "stop":
            self._cancel(b)  # matched here: the server would go on writing
        if text or finished:
            events.append(TokenEvent(b, UNKNOWN_TOKEN, text, finished))

    def _on_failure(self, request: _Request, exc: RequestFailed, events: list[TokenEvent]) -> None:
        if len(request.branches) > 1 and not exc.retryable and not request.started:
            # e.g. 400 "only one choice", or a prompt too long for the server: which of the two
            # it was, their requests alone tell (see _apply) before `n` is turned off for good
            self._drop_n(request, range(len(request.branches)), doubt=True)
            return
        for b in self._served_by(request):
            self._n_doubt.discard(b.id)  # failed alone too: not for its `n`
            self._retry_or_fail(b, exc, events)

    def _on_closed(self, request: _Request, events: list[TokenEvent]) -> None:
        """The stream ended cleanly; choices it never served or never finished go again."""
        index = {b.id: i for i, b in enumerate(request.branches)}
        for b in self._served_by(request):
            i = index[b.id]
            if i in request.started:
                self._retry_or_fail(b, RequestFailed("no finish reason", retryable=True), events)
            elif len(request.branches) > 1:
                self.backend.use_n = False  # it ignored `n`: these go out on their own
            else:
                self._fail(b, "the server returned no choice", events)

    def _served_by(self, request: _Request) -> list[Branch]:
        """Forget `request`; the live branches that were still waiting on it."""
        waiting = []
        for i, b in enumerate(request.branches):
            if self._inflight.get(b.id) is request:
                del self._inflight[b.id]
                if not b.done and self._gen[b.id] == request.gens[i]:
                    waiting.append(b)
        return waiting

    def _drop_n(self, request: _Request, indexes: Iterable[int], *, doubt: bool = False) -> None:
        """The server does not do `n` (or, with `doubt`, may not): send these siblings as
        requests of their own."""
        if not doubt:
            self.backend.use_n = False
        for i in indexes:
            b = request.branches[i]
            if doubt:
                self._n_doubt.add(b.id)
            if self._inflight.get(b.id) is request:
                del self._inflight[b.id]

    def _retry_or_fail(self, b: Branch, exc: RequestFailed, events: list[TokenEvent]) -> None:
        """Try again after a backoff, continuing from the text received, or give up on `b`."""
        attempt = self._attempts.get(b.id, 0) + 1
        resumable = self.prompt.text is not None or not b.text
        if exc.retryable and resumable and attempt <= self.backend.config.retries:
            self._attempts[b.id] = attempt
            self._retry_at[b.id] = time.monotonic() + backoff_s(attempt - 1, exc.retry_after)
            self.stats.retries += 1
            return
        why = str(exc) if resumable else f"{exc}; chat mode cannot resume a partial answer"
        self._fail(b, f"{why} (after {attempt} attempt{'s' if attempt > 1 else ''})", events)

    def _fail(self, b: Branch, message: str, events: list[TokenEvent]) -> None:
        b.finish_reason = FAILED
        self.errors[b.id] = message
        self.stats.failed += 1
        events.append(TokenEvent(b, None, "", True))

    def _cancel(self, b: Branch) -> None:
        """Forget `b`'s request; cancel it once none of its branches still wants it."""
        self._gen[b.id] = self._gen.get(b.id, 0) + 1
        request = self._inflight.pop(b.id, None)
        if request is None or request.future is None:
            return
        if not any(self._inflight.get(o.id) is request for o in request.branches):
            request.future.cancel()


def _without_seed(s: Sampling) -> tuple[Any, ...]:
    return (s.temperature, s.top_p, s.top_k, s.min_p, s.repeat_penalty)
