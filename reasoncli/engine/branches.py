"""The branch engine: many sampled continuations of one prompt, decoded together.

The prompt is decoded once into a reserved sequence (0), its last token with logits, which the
engine keeps. A branch gets its own sequence by a full-range KV copy (`llama_memory_seq_cp`, the
only kind llama.cpp allows across per-sequence KV streams) and samples its first token from the
kept logits, so no part of the prompt is decoded twice (llama-server's `n` does the same). Every
`step()` puts the pending token of each live branch into one `llama_decode` batch and samples
each branch with its own sampler chain.

A branch's state is "KV for what has been decoded" plus "pending tokens not yet decoded".
Every sampled token starts out pending, and so does the prompt's last token in a new branch,
marked `from_prompt`: its KV is in the copy already, so the branch's first step samples from
the kept logits instead of decoding it. That makes adding a branch from the prompt, forking a
branch mid-generation and injecting forced text ("Wait", "Final Answer:") the same operation:
copy the KV, then set what is pending.
"""

from __future__ import annotations

import codecs
import ctypes
import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from reasoncli.engine.branch_state import FAILED, Branch, BranchRoster, TokenEvent, TokenLogprobs
from reasoncli.engine.context import (
    PROMPT_SEQ,
    ContextTuning,
    DecodeContext,
    default_threads,
    ggml_type,
    open_context,
)
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.prompt_feed import PromptFeed, Row, fill
from reasoncli.engine.sampling import Sampling, build_sampler_chain
from reasoncli.engine.sizing import ContextPlan
from reasoncli.engine.slots import consecutive
from reasoncli.errors import ReasonError, ResourceError

# Re-exported: where engines, strategies and tests have always imported them from.
__all__ = [
    "FAILED",
    "PROMPT_SEQ",
    "Branch",
    "BranchEngine",
    "ContextTuning",
    "TokenEvent",
    "TokenLogprobs",
    "default_threads",
    "ggml_type",
    "open_context",
]


_Engine = TypeVar("_Engine", bound="BranchEngine")


class BranchEngine(BranchRoster):
    """Shared-prefix batched decoding of one prompt's branches on a `DecodeContext`.

    `plan` bounds this engine: how many branches hold a sequence at once (`branch_limit`) and
    the cells each sequence has (`n_ctx_seq`). `BranchEngine.open` gives an engine a context of
    its own; the server's engines share one (pool.py).
    """

    def __init__(
        self,
        context: DecodeContext,
        plan: ContextPlan,
        *,
        logprobs: int = 0,
        prompt_seq: int = PROMPT_SEQ,
    ) -> None:
        self.context = context
        self.lib = context.lib
        self.model = context.model
        self.plan = plan
        self.top_logprobs = logprobs
        self.prompt_seq = prompt_seq
        self._branches: list[Branch] = []
        self._branch_limit = plan.branch_limit  # branches that may hold a sequence at once
        self._held = 0
        self._prompt_tokens: list[int] = []
        self._feed = PromptFeed(prompt_seq)  # prompt tokens not decoded yet
        self._prompt_logits: np.ndarray | None = None  # after the whole prompt: first tokens
        self.decode_calls = 0
        self.kv_moves = 0  # branches moved to close gaps between live sequence ids (slots.py)
        self.errors: dict[int, str] = {}  # branch id -> why it failed (remote engines only)

    @classmethod
    def open(
        cls,
        model: LlamaModel,
        plan: ContextPlan,
        *,
        n_threads: int | None = None,
        flash_attn: bool = True,
        logprobs: int = 0,
        tuning: ContextTuning | None = None,
    ) -> BranchEngine:
        """An engine on a context of its own, sized by `plan`; closing the engine frees it."""
        context = DecodeContext(
            model, plan, n_threads=n_threads, flash_attn=flash_attn, tuning=tuning
        )
        return cls(context, plan, logprobs=logprobs)

    @property
    def ctx(self) -> object:
        """The llama.cpp context (None once closed)."""
        return self.context.ctx

    @property
    def n_threads(self) -> int:
        return self.context.n_threads

    # -- prompt -----------------------------------------------------------------------------
    def set_prompt(self, tokens: Sequence[int]) -> None:
        """Decode the prompt into the prompt sequence, in n_batch chunks."""
        self._check_prompt(tokens)
        with self.context.lock:
            self.context.clear_seq(self.prompt_seq)
            self._prompt_tokens = list(tokens)
            self._prefill(self._prompt_tokens, 0)

    def _check_prompt(self, tokens: Sequence[int]) -> None:
        if not tokens:
            raise ReasonError("empty prompt")
        if len(tokens) + 1 > self.plan.n_ctx_seq:
            raise ResourceError(
                f"prompt of {len(tokens)} tokens does not fit a context of {self.plan.n_ctx_seq}"
            )

    def _prefill(self, body: Sequence[int], start: int) -> None:
        """Decode `body[start:]` into the prompt sequence, whose KV holds `body[:start]`."""
        self._feed.start(body, start)
        while self._feed:
            rows = self._feed.take(self.plan.n_batch)
            self._decode(rows)
            self.keep_prompt_logits(rows)

    def keep_prompt_logits(self, rows: Sequence[Row]) -> None:
        """After a decode of `rows`: if they ended the prompt, keep its logits (a copy: the next
        decode overwrites them) for the branches' first tokens."""
        for i, (_, _, seq, wants_logits) in enumerate(rows):
            if wants_logits and seq == self.prompt_seq:
                self._prompt_logits = self._logits_at(i).copy()

    @property
    def prompt_tokens_decoded(self) -> int:
        return self._feed.fed

    @property
    def prefilling(self) -> bool:
        """Whether prompt tokens wait to be fed into decode rounds (pool.py)."""
        return bool(self._feed)

    def with_prompt(self: _Engine, tokens: Sequence[int]) -> _Engine:
        """This engine with `tokens` decoded as its prompt; closed if that fails."""
        try:
            self.set_prompt(tokens)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def prompt_tokens(self) -> list[int]:
        return list(self._prompt_tokens)

    # -- branches ---------------------------------------------------------------------------
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
        if not self._prompt_tokens or self._prompt_logits is None:
            raise ReasonError("set_prompt() must come before add_branch()")
        with self.context.lock:
            seq = self._take_seq()
            self.context.copy_seq(self.prompt_seq, seq)
        branch = Branch(
            id=len(self._branches),
            seq=seq,
            sampling=sampling,
            max_tokens=max_tokens,
            stop=tuple(stop),
            n_past=len(self._prompt_tokens) - 1,
            pending=[self._prompt_tokens[-1]],
            from_prompt=True,
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
        parent.check_held("forked")
        with self.context.lock:
            seq = self._take_seq()
            self.context.copy_seq(parent.seq, seq)
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
        as if it had written `text` itself; after a stop string, its tokens are dropped from the
        KV too (`Branch.take_text`), as they were from the text.
        """
        branch.check_held()
        refeed = ""
        if branch.rewind is not None:  # ended by a stop string: drop its tokens from the KV
            position, offset = branch.rewind
            with self.context.lock:
                self.context.trim_seq(branch.seq, position)
            branch.n_past, branch.pending = position, []
            refeed = branch.text[offset:]  # the kept text of the token the stop began in
        forced = self.model.tokenize(refeed + text, add_special=False, parse_special=True)
        if forced:  # decoded after the prompt's last token, in place of a first sample
            branch.skip_prompt_token()
        if branch.n_past + len(branch.pending) + len(forced) + 1 > self.plan.n_ctx_seq:
            raise ResourceError(f"branch {branch.id} has no room left in its context")
        branch.pending.extend(forced)
        branch.force(text, len(forced), max_tokens, stop)
        return forced

    def finish(self, branch: Branch, reason: str = "stopped") -> None:
        """Stop one branch while the others go on. Its KV stays until `release`."""
        if not branch.done:
            branch.finish_reason = reason

    def release(self, branch: Branch) -> None:
        """Free a branch's sequence so a new branch can use it."""
        self.finish(branch)
        if branch.seq >= 0:
            with self.context.lock:
                self.context.clear_seq(branch.seq)
                self.context.slots.give(branch.seq)
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
        their branches go into the same `llama_decode` batches, and the last batch's spare rows
        take the queued prompt tokens of engines still prefilling. Returns each engine's events.

        Branch rows come first: llama.cpp splits a batch over per-sequence KV streams into
        runs of consecutive ids, so a prompt's rows after them still decode as one chunk of
        their own, as they would alone."""
        live = [
            (k, b) for k, e in enumerate(engines) for b in e._branches if not b.done and b.pending
        ]
        events: list[list[TokenEvent]] = [[] for _ in engines]
        feeding = [e for e in engines if e._feed]
        feeds = [e._feed for e in feeding]
        with self.context.lock:
            self._compact(engines, live)
            first = [(k, b) for k, b in live if b.from_prompt]
            live = [(k, b) for k, b in live if not b.from_prompt]
            for k, b in first:  # sampled from the prompt's logits: nothing to decode
                events[k].append(engines[k]._sample_first(b))
            live.sort(key=lambda item: item[1].seq)  # llama.cpp batches consecutive ids together
            groups = self._pack(live)
            n_batch = self.plan.n_batch
            if feeds and (not groups or sum(len(b.pending) for _, b in groups[-1]) >= n_batch):
                groups.append([])  # no spare row: the prompts get a batch of their own
            for n, group in enumerate(groups):
                rows: list[Row] = []
                out_rows: list[int] = []
                for _, b in group:
                    last = len(b.pending) - 1
                    for j, tok in enumerate(b.pending):
                        rows.append((tok, b.n_past + j, b.seq, j == last))
                    out_rows.append(len(rows) - 1)
                if n == len(groups) - 1:
                    rows += fill(feeds, n_batch - len(rows))
                self._decode(rows)
                if n == len(groups) - 1:
                    for e in feeding:
                        e.keep_prompt_logits(rows)
                for (k, b), row in zip(group, out_rows, strict=True):
                    b.n_past += len(b.pending)
                    b.pending = []
                    events[k].append(engines[k]._sample(b, row))
        return events

    def first_tokens(self) -> list[TokenEvent] | None:
        """A step that decodes nothing, when that is all this engine's next step would be: every
        live branch still has its first token to sample, from the prompt's kept logits. None
        otherwise. The server runs it outside the shared rounds (pool.py)."""
        live = [b for b in self._branches if not b.done and b.pending]
        if self._feed or not live or not all(b.from_prompt for b in live):
            return None
        return [self._sample_first(b) for b in live]

    def run(self) -> Iterable[list[TokenEvent]]:
        """Step until no branch is live; yields each step's events."""
        while any(not b.done and b.pending for b in self._branches):
            yield self.step()

    def request_counts(self) -> None:
        """Decoded here: no requests to count."""
        return None

    def close(self) -> None:
        self._free_samplers()
        self.context.close()

    def __enter__(self) -> BranchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _free_samplers(self) -> None:
        for b in self._branches:
            if b._sampler is not None:
                self.lib.llama_sampler_free(b._sampler)
                b._sampler = None

    def _take_seq(self) -> int:
        if self._held >= self._branch_limit or not len(self.context.slots):
            raise ResourceError(
                f"all {self._branch_limit} branch slots are in use; release a branch first"
            )
        self._held += 1
        return self.context.slots.take()

    def _compact(self, engines: Sequence[BranchEngine], live: list[tuple[int, Branch]]) -> None:
        """Move live branches onto consecutive sequence ids, so the step is one pass (slots.py)."""
        live_seqs = [b.seq for _, b in live]
        context = self.context
        if not context.split_kv or consecutive(live_seqs):  # the usual step: nothing to plan
            return
        stepping = {id(b) for _, b in live}
        held = [b for e in engines for b in e._branches if b.seq >= 0]
        idle = [b.seq for b in held if id(b) not in stepping]
        moves = context.slots.plan_moves(live_seqs, idle)
        by_seq = {b.seq: b for b in held}
        for src, dst in moves:
            branch = by_seq.pop(src)
            context.slots.take(dst)
            # A cross-stream copy is queued and runs at the start of the next decode, in order.
            context.copy_seq(src, dst)
            context.clear_seq(src)
            context.slots.give(src)
            branch.seq = dst
            by_seq[dst] = branch
        self.kv_moves += len(moves)

    def _register(self, branch: Branch, *, decoder_ready: bool = False) -> Branch:
        if not decoder_ready:
            branch._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        branch._sampler = build_sampler_chain(self.lib, branch.sampling, self.model.n_vocab)
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

    def _decode(self, rows: Iterable[Row]) -> None:
        self.context.fill_batch(rows)
        self.context.decode()
        self.decode_calls += 1

    def _logits_at(self, row: int) -> np.ndarray:
        """The logits of a batch row of the last decode (valid until the next one)."""
        ptr = self.lib.llama_get_logits_ith(self.context.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))

    def _sample(self, b: Branch, row: int) -> TokenEvent:
        token = self.lib.llama_sampler_sample(b._sampler, self.context.ctx, row)
        if self.top_logprobs:
            b.logprobs.append(self._logprobs(self._logits_at(row), token))
        return self._took(b, token)

    def _sample_first(self, b: Branch) -> TokenEvent:
        """A branch's first token, from the logits kept at the end of the prompt (its pending
        prompt token is in its KV already)."""
        logits = self._prompt_logits
        assert logits is not None  # add_branch checked
        b.skip_prompt_token()
        token = _sample_from_logits(self.lib, b._sampler, logits)
        if self.top_logprobs:
            b.logprobs.append(self._logprobs(logits, token))
        return self._took(b, token)

    def _took(self, b: Branch, token: int) -> TokenEvent:
        """`b` sampled `token`: its text, stop strings and budget, as a step's event."""
        if self.model.is_eog(token):
            b.finish_reason = "eos"
            return TokenEvent(b, token, "", True)
        b.tokens.append(token)
        piece = b._decoder.decode(self.model.token_bytes(token))
        finished = False
        if piece:
            piece = b.take_text(piece, position=b.n_past)
            finished = b.finish_reason == "stop"
        if not finished:
            # Sampled but not yet decoded: kept even at the budget, so inject() can continue.
            b.pending = [token]
            if b.n_tokens >= b.max_tokens:
                b.finish_reason = "length"
                finished = True
        return TokenEvent(b, token, piece, finished)

    def _logprobs(self, logits: np.ndarray, token: int) -> TokenLogprobs:
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


# llama_token_data as numpy lays it out: {int32 id; float logit; float p}
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


def _sample_from_logits(lib: Any, chain: Any, logits: np.ndarray) -> int:
    """What `llama_sampler_sample` does with a context's logits row, on logits kept elsewhere:
    apply the chain to every token's logit, take the selected token, and accept it."""
    data = np.zeros(len(logits), dtype=_TOKEN_DATA)
    data["id"] = np.arange(len(logits))
    data["logit"] = logits
    array = lib.llama_token_data_array(
        data=data.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)),
        size=len(logits),
        selected=-1,
        sorted=False,
    )
    lib.llama_sampler_apply(chain, ctypes.byref(array))
    token = int(array.data[array.selected].id)
    lib.llama_sampler_accept(chain, token)
    return token
