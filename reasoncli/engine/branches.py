"""The branch engine: many sampled continuations of one prompt, decoded together.

The prompt is decoded once into a reserved sequence (0). A branch gets its own sequence by a
full-range KV copy (`llama_memory_seq_cp`, the only kind llama.cpp allows across per-sequence
KV streams), so the prompt is never decoded twice. Every `step()` puts the pending token of each
live branch into one `llama_decode` batch and samples each branch with its own sampler chain.

A branch's state is "KV for what has been decoded" plus "pending tokens not yet decoded".
The prompt's last token and every sampled token start out pending. That makes adding a branch
from the prompt, forking a branch mid-generation and injecting forced text ("Wait",
"Final Answer:") the same operation: copy the KV, then set what is pending.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reasoncli.engine.core_share import ThreadShare
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.sampling import Sampling, build_sampler_chain
from reasoncli.engine.sizing import ContextPlan
from reasoncli.engine.slots import SeqSlots, consecutive
from reasoncli.errors import ReasonError, ResourceError

PROMPT_SEQ = 0
FAILED = "failed"  # remote branches whose requests ran out of retries


@dataclass(frozen=True)
class TokenLogprobs:
    """The chosen token's log-probability and the top-k alternatives (raw model distribution)."""

    token: int
    logprob: float
    top_tokens: tuple[int, ...]
    top_logprobs: tuple[float, ...]


@dataclass
class Branch:
    """One continuation. Read its fields; change it only through the engine."""

    id: int
    seq: int
    sampling: Sampling
    max_tokens: int
    stop: tuple[str, ...] = ()
    parent: int | None = None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[TokenLogprobs] = field(default_factory=list)
    finish_reason: str | None = None  # "eos" | "stop" | "length" | "stopped" | "failed"
    stop_hit: str | None = None  # which stop string ended it
    n_past: int = 0
    pending: list[int] = field(default_factory=list)
    forced_tokens: int = 0
    _decoder: Any = None
    _sampler: Any = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def n_tokens(self) -> int:
        """Tokens this branch generated (forced text not counted)."""
        return len(self.tokens)

    def child(
        self,
        id: int,
        seq: int,
        sampling: Sampling | None,
        max_tokens: int | None,
        stop: Iterable[str] | None,
    ) -> Branch:
        """A fork: everything produced so far, under its own id and settings (None: inherit)."""
        return Branch(
            id=id,
            seq=seq,
            sampling=sampling or self.sampling,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            stop=self.stop if stop is None else tuple(stop),
            parent=self.id,
            tokens=list(self.tokens),
            text=self.text,
            logprobs=list(self.logprobs),
            n_past=self.n_past,
            pending=list(self.pending),
            forced_tokens=self.forced_tokens,
        )


@dataclass(frozen=True)
class TokenEvent:
    """What one step produced for one branch."""

    branch: Branch
    token: int | None
    text: str
    finished: bool


@dataclass(frozen=True)
class ContextTuning:
    """Context knobs that benchmarks try (issue #13); the defaults are what `reason` runs with.

    `n_batch` is not here: it comes from the `ContextPlan`, which checks that batches fit.
    """

    n_ubatch: int | None = None  # None: min(n_batch, 512), the size sizing.py budgets for
    n_threads_batch: int | None = None  # None: the decode thread count
    type_k: str | None = None  # KV cache types by ggml name ("f16", "q8_0"); None: f16
    type_v: str | None = None  # a quantized V cache needs flash attention
    kv_unified: bool = False  # True: one KV stream shared by every sequence


class BranchEngine:
    """Shared-prefix batched decoding over one llama.cpp context."""

    def __init__(
        self,
        model: LlamaModel,
        plan: ContextPlan,
        *,
        n_threads: int | None = None,
        flash_attn: bool = True,
        logprobs: int = 0,
        tuning: ContextTuning | None = None,
    ) -> None:
        self.lib = model.lib
        self.model = model
        self.plan = plan
        self.top_logprobs = logprobs
        self.ctx = open_context(
            model, plan, n_threads=n_threads, flash_attn=flash_attn, tuning=tuning
        )
        self.memory = self.lib.llama_get_memory(self.ctx)
        self.n_threads = n_threads or default_threads()
        # A thread count the user chose stays; the default shares the cores (core_share.py).
        base_batch = (tuning.n_threads_batch if tuning else None) or self.n_threads
        self._threads = ThreadShare(self.n_threads, base_batch, fixed=n_threads is not None)
        self._split_kv = not (tuning and tuning.kv_unified)  # one stream per sequence: compact ids
        self._batch = self.lib.llama_batch_init(plan.n_batch, 0, 1)
        self.prompt_seq = PROMPT_SEQ
        self._branches: list[Branch] = []
        self._slots = SeqSlots(range(PROMPT_SEQ + 1, plan.n_seq_max))
        self._branch_limit = plan.branch_limit  # branches that may hold a sequence at once
        self._held = 0
        self._prompt_tokens: list[int] = []
        self.prompt_tokens_decoded = 0
        self.decode_calls = 0
        self.kv_moves = 0  # branches moved to close gaps between live sequence ids (slots.py)
        self.errors: dict[int, str] = {}  # branch id -> why it failed (remote engines only)

    # -- prompt -----------------------------------------------------------------------------
    def set_prompt(self, tokens: Sequence[int]) -> None:
        """Decode all but the last prompt token into the prompt sequence, in n_batch chunks."""
        if not tokens:
            raise ReasonError("empty prompt")
        if len(tokens) + 1 > self.plan.n_ctx_seq:
            raise ResourceError(
                f"prompt of {len(tokens)} tokens does not fit a context of {self.plan.n_ctx_seq}"
            )
        self.lib.llama_memory_seq_rm(self.memory, self.prompt_seq, -1, -1)
        self._prompt_tokens = list(tokens)
        body = self._prompt_tokens[:-1]
        for start in range(0, len(body), self.plan.n_batch):
            chunk = body[start : start + self.plan.n_batch]
            rows = ((tok, start + i, self.prompt_seq, False) for i, tok in enumerate(chunk))
            self._fill_batch(rows)
            self._decode()
        self.prompt_tokens_decoded += len(body)

    @property
    def prompt_tokens(self) -> list[int]:
        return list(self._prompt_tokens)

    # -- branches ---------------------------------------------------------------------------
    @property
    def branches(self) -> list[Branch]:
        return list(self._branches)

    @property
    def live(self) -> list[Branch]:
        return [b for b in self._branches if not b.done]

    @property
    def capacity(self) -> int:
        """How many more branches can be alive at once."""
        return self._branch_limit - self._held

    @property
    def in_use(self) -> int:
        """Branches holding a sequence (alive or finished but not released)."""
        return self._held

    def add_branch(self, sampling: Sampling, max_tokens: int, stop: Iterable[str] = ()) -> Branch:
        """Start a branch from the shared prompt; its KV is a copy, not a re-decode."""
        if not self._prompt_tokens:
            raise ReasonError("set_prompt() must come before add_branch()")
        seq = self._take_seq()
        self.lib.llama_memory_seq_cp(self.memory, self.prompt_seq, seq, -1, -1)
        branch = Branch(
            id=len(self._branches),
            seq=seq,
            sampling=sampling,
            max_tokens=max_tokens,
            stop=tuple(stop),
            n_past=len(self._prompt_tokens) - 1,
            pending=[self._prompt_tokens[-1]],
        )
        return self._register(branch)

    def fork(
        self,
        parent: Branch,
        sampling: Sampling | None = None,
        max_tokens: int | None = None,
        stop: Iterable[str] | None = None,
    ) -> Branch:
        """A new branch that shares everything `parent` has produced so far, then diverges."""
        if parent.seq < 0:
            raise ReasonError(f"branch {parent.id} was released and cannot be forked")
        seq = self._take_seq()
        self.lib.llama_memory_seq_cp(self.memory, parent.seq, seq, -1, -1)
        child = parent.child(len(self._branches), seq, sampling, max_tokens, stop)
        child._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        state = parent._decoder.getstate() if parent._decoder else (b"", 0)
        child._decoder.setstate(state)
        return self._register(child, decoder_ready=True)

    def inject(
        self,
        branch: Branch,
        text: str,
        *,
        max_tokens: int | None = None,
        stop: Iterable[str] | None = None,
    ) -> list[int]:
        """Force `text` into a branch (e.g. "Wait" or "Final Answer:"), reviving it if it ended.

        A sampled end-of-generation token is dropped rather than decoded, so the model continues
        as if it had written `text` itself.
        """
        if branch.seq < 0:
            raise ReasonError(f"branch {branch.id} was released")
        forced = self.model.tokenize(text, add_special=False, parse_special=True)
        if branch.n_past + len(branch.pending) + len(forced) + 1 > self.plan.n_ctx_seq:
            raise ResourceError(f"branch {branch.id} has no room left in its context")
        branch.pending.extend(forced)
        branch.text += text
        branch.forced_tokens += len(forced)
        branch.finish_reason = None
        branch.stop_hit = None
        if max_tokens is not None:
            branch.max_tokens = max_tokens
        if stop is not None:
            branch.stop = tuple(stop)
        return forced

    def finish(self, branch: Branch, reason: str = "stopped") -> None:
        """Stop one branch while the others go on. Its KV stays until `release`."""
        if not branch.done:
            branch.finish_reason = reason

    def release(self, branch: Branch) -> None:
        """Free a branch's sequence so a new branch can use it."""
        self.finish(branch)
        if branch.seq >= 0:
            self.lib.llama_memory_seq_rm(self.memory, branch.seq, -1, -1)
            self._slots.give(branch.seq)
            self._held -= 1
            branch.seq = -1
        if branch._sampler is not None:
            self.lib.llama_sampler_free(branch._sampler)
            branch._sampler = None

    # -- decoding ---------------------------------------------------------------------------
    def step(self) -> list[TokenEvent]:
        """Decode every live branch's pending tokens together and sample one token for each."""
        return self.step_together([self])[0]

    def step_together(self, engines: Sequence[BranchEngine]) -> list[list[TokenEvent]]:
        """One step for several engines on this engine's context (the server's shared one):
        their branches go into the same `llama_decode` batches. Returns each engine's events."""
        live = [
            (k, b) for k, e in enumerate(engines) for b in e._branches if not b.done and b.pending
        ]
        self._compact(engines, live)
        live.sort(key=lambda item: item[1].seq)  # llama.cpp batches consecutive ids together
        events: list[list[TokenEvent]] = [[] for _ in engines]
        for group in self._pack(live):
            rows: list[tuple[int, int, int, bool]] = []
            out_rows: list[int] = []
            for _, b in group:
                last = len(b.pending) - 1
                for j, tok in enumerate(b.pending):
                    rows.append((tok, b.n_past + j, b.seq, j == last))
                out_rows.append(len(rows) - 1)
            self._fill_batch(rows)
            self._decode()
            for (k, b), row in zip(group, out_rows, strict=True):
                b.n_past += len(b.pending)
                b.pending = []
                events[k].append(engines[k]._sample(b, row))
        return events

    def run(self) -> Iterable[list[TokenEvent]]:
        """Step until no branch is live; yields each step's events."""
        while any(not b.done and b.pending for b in self._branches):
            yield self.step()

    def close(self) -> None:
        lib = self.lib
        for b in self._branches:
            if b._sampler is not None:
                lib.llama_sampler_free(b._sampler)
                b._sampler = None
        if getattr(self, "_batch", None) is not None:
            lib.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "ctx", None):
            lib.llama_free(self.ctx)
            self.ctx = None

    def __enter__(self) -> BranchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _take_seq(self) -> int:
        if self._held >= self._branch_limit or not len(self._slots):
            raise ResourceError(
                f"all {self._branch_limit} branch slots are in use; release a branch first"
            )
        self._held += 1
        return self._slots.take()

    def _compact(self, engines: Sequence[BranchEngine], live: list[tuple[int, Branch]]) -> None:
        """Move live branches onto consecutive sequence ids, so the step is one pass (slots.py)."""
        live_seqs = [b.seq for _, b in live]
        if not self._split_kv or consecutive(live_seqs):  # the usual step: nothing to plan
            return
        stepping = {id(b) for _, b in live}
        held = [b for e in engines for b in e._branches if b.seq >= 0]
        idle = [b.seq for b in held if id(b) not in stepping]
        moves = self._slots.plan_moves(live_seqs, idle)
        by_seq = {b.seq: b for b in held}
        for src, dst in moves:
            branch = by_seq.pop(src)
            self._slots.take(dst)
            # A cross-stream copy is queued and runs at the start of the next decode, in order.
            self.lib.llama_memory_seq_cp(self.memory, src, dst, -1, -1)
            self.lib.llama_memory_seq_rm(self.memory, src, -1, -1)
            self._slots.give(src)
            branch.seq = dst
            by_seq[dst] = branch
        self.kv_moves += len(moves)

    def _register(self, branch: Branch, *, decoder_ready: bool = False) -> Branch:
        if not decoder_ready:
            branch._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        branch._sampler = build_sampler_chain(self.lib, branch.sampling)
        if branch.n_tokens >= branch.max_tokens:
            branch.finish_reason = "length"
        elif not branch.pending:  # forked from a branch that had already ended on its own
            branch.finish_reason = "eos"
        self._branches.append(branch)
        return branch

    def _pack(self, live: list[tuple[int, Branch]]) -> list[list[tuple[int, Branch]]]:
        """Group (engine index, branch) pairs so that each decode call stays within n_batch rows."""
        groups: list[list[tuple[int, Branch]]] = [[]]
        used = 0
        for item in live:
            size = len(item[1].pending)
            if size > self.plan.n_batch:
                raise ResourceError(f"branch {item[1].id} has {size} pending tokens > n_batch")
            if used + size > self.plan.n_batch:
                groups.append([])
                used = 0
            groups[-1].append(item)
            used += size
        return [g for g in groups if g]

    def _fill_batch(self, rows: Iterable[tuple[int, int, int, bool]]) -> None:
        batch = self._batch
        token, pos, n_seq, seq_id, logits = (
            batch.token,
            batch.pos,
            batch.n_seq_id,
            batch.seq_id,
            batch.logits,
        )
        n = 0
        for tok, p, seq, want_logits in rows:
            token[n] = tok
            pos[n] = p
            n_seq[n] = 1
            seq_id[n][0] = seq
            logits[n] = want_logits
            n += 1
        batch.n_tokens = n

    def _decode(self) -> None:
        self._threads.before_decode(self.lib, self.ctx)
        rc = self.lib.llama_decode(self.ctx, self._batch)
        self.decode_calls += 1
        if rc == 1:
            raise ResourceError("the KV cache is full; use fewer branches or fewer tokens")
        if rc != 0:
            raise ReasonError(f"llama_decode failed with code {rc}")

    def _sample(self, b: Branch, row: int) -> TokenEvent:
        lib = self.lib
        token = lib.llama_sampler_sample(b._sampler, self.ctx, row)
        if self.top_logprobs:
            b.logprobs.append(self._logprobs(row, token))
        if self.model.is_eog(token):
            b.finish_reason = "eos"
            return TokenEvent(b, token, "", True)
        b.tokens.append(token)
        piece = b._decoder.decode(self.model.token_bytes(token))
        finished = False
        if piece:
            start = max(0, len(b.text) - max((len(s) for s in b.stop), default=0))
            b.text += piece
            for s in b.stop:
                at = b.text.find(s, start)
                if at >= 0:
                    removed = len(b.text) - at
                    b.text = b.text[:at]
                    piece = piece[: max(0, len(piece) - removed)]
                    b.finish_reason = "stop"
                    b.stop_hit = s
                    finished = True
                    break
        if not finished:
            # Sampled but not yet decoded: kept even at the budget, so inject() can continue.
            b.pending = [token]
            if b.n_tokens >= b.max_tokens:
                b.finish_reason = "length"
                finished = True
        return TokenEvent(b, token, piece, finished)

    def _logprobs(self, row: int, token: int) -> TokenLogprobs:
        ptr = self.lib.llama_get_logits_ith(self.ctx, row)
        logits = np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))
        peak = float(logits.max())
        lse = peak + math.log(float(np.exp(logits - peak).sum()))
        k = self.top_logprobs
        top = np.argpartition(logits, -k)[-k:]
        top = top[np.argsort(logits[top])[::-1]]
        return TokenLogprobs(
            token=token,
            logprob=float(logits[token]) - lse,
            top_tokens=tuple(int(t) for t in top),
            top_logprobs=tuple(float(logits[t]) - lse for t in top),
        )


def open_context(
    model: LlamaModel,
    plan: ContextPlan,
    *,
    n_threads: int | None = None,
    flash_attn: bool = True,
    tuning: ContextTuning | None = None,
) -> Any:
    """A llama.cpp context with one KV stream per sequence, as `plan` sizes it."""
    lib = model.lib
    tuning = tuning or ContextTuning()
    params = lib.llama_context_default_params()
    params.n_ctx = plan.n_ctx
    params.n_batch = plan.n_batch
    params.n_ubatch = min(plan.n_batch, tuning.n_ubatch or 512)
    params.n_seq_max = plan.n_seq_max
    params.kv_unified = tuning.kv_unified
    threads = n_threads or default_threads()
    params.n_threads = threads
    params.n_threads_batch = tuning.n_threads_batch or threads
    if tuning.type_k:
        params.type_k = ggml_type(lib, tuning.type_k)
    if tuning.type_v:
        params.type_v = ggml_type(lib, tuning.type_v)
    params.flash_attn_type = (
        lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    params.no_perf = True
    ctx = lib.llama_init_from_model(model.model, params)
    if not ctx:
        raise ResourceError(
            f"llama.cpp could not create a context of {plan.n_ctx} tokens for "
            f"{plan.n_seq_max - 1} branches; use fewer branches or fewer tokens"
        )
    return ctx


def ggml_type(lib: Any, name: str) -> int:
    """A ggml tensor type from its name ("q8_0" -> GGML_TYPE_Q8_0)."""
    value = getattr(lib, f"GGML_TYPE_{name.upper()}", None)
    if value is None:
        raise ReasonError(f"unknown ggml type {name!r} (try f16, q8_0, q4_0)")
    return int(value)


def default_threads() -> int:
    """Physical-ish core count: llama.cpp is slower when oversubscribed."""
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        n = os.cpu_count() or 1
    return max(1, min(n, 16))
