"""One llama.cpp context shared by many runs at once: continuous batching for `reason serve`.

Every run still gets a `BranchEngine` of its own (its prompt, its branches, its counters), but
all of them live on one context and take their sequences from one pool. When a run's strategy
calls `step()`, the `StepScheduler` waits briefly for the other busy runs to want a step too,
then one of the callers decodes every run's pending tokens in the same `llama_decode` batches
(`BranchEngine.step_together`). Branches of different requests therefore share batches, which
is where the throughput of batched decoding comes from. A newly admitted run's prompt is fed
into the same rounds, in the rows the branches leave free (prompt_feed.py), so the running runs
keep generating while it prefills; it starts sampling once its prompt is in.

Every llama.cpp call on the context (decode, sequence copy and removal) holds the context's
lock (`DecodeContext.lock`), because a context is not thread-safe. A run reserves a number of
branch slots, not particular sequence ids: its branches take the lowest free ids of the shared
pool, so that a round's rows sit on consecutive ids and llama.cpp decodes them in one pass
(slots.py). A run's prompt goes in before it waits for its branch slots (admission.py), which
it waits for up to `acquire_timeout_s`, in arrival order; at most `max_waiting` runs wait at
once, beyond that `PoolBusy` is raised, which the server turns into 503/429 with Retry-After.

A run's prompt sequence keeps its KV after the run closes, and a new run starts from the longest
prefix of its prompt that some prompt sequence holds (prefix_cache.py); `prompt_cache=False`
(`reason serve --no-prompt-cache`) clears it instead and prefills every prompt whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from reasoncli.engine.admission import Admission, WaitCancelled
from reasoncli.engine.branch_state import TokenEvent
from reasoncli.engine.branches import BranchEngine
from reasoncli.engine.context import DecodeContext
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.prefix_cache import PrefixTable
from reasoncli.engine.sizing import ContextPlan
from reasoncli.errors import UsageError

# How long a step waits for other busy runs to join its batch, measured from the end of the
# previous decode: long enough for a run to handle its events and ask again, short against a step.
GATHER_S = 0.004
# A run that was in the previous round and still has rows is about to ask again (it is handling
# that round's events, maybe waiting for the GIL or a core): the round waits for it up to this
# fraction of the previous round's time, capped. Leaving it out would cost it a round of its own,
# a whole pass over the weights; llama-server never does, its slots all decode every iteration.
# A run that holds instead (a verifier, a slow client) delays one round by at most the bound: it
# is not in that round, so the next one waits for it only GATHER_S.
ROUND_FRACTION = 0.5
MAX_GATHER_S = 0.1


class TokenBudget:
    """A request's ceiling on generated tokens over all of its engines (--max-request-tokens).

    Checked after every step: once it is spent, the request's live branches end with
    finish_reason "length", so a strategy that plans more than it says still stops. It may be
    passed by at most one token per live branch (the step that crossed it).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self._lock = threading.Lock()

    def spend(self, tokens: int) -> bool:
        """Count `tokens` more; True once the ceiling is reached."""
        with self._lock:
            self.spent += tokens
            return self.spent >= self.limit


class StepScheduler:
    """Gathers the `step()` calls of concurrent engines into one decode round."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._cond = threading.Condition()
        self._engines: set[PooledEngine] = set()
        self._waiting: list[PooledEngine] = []
        self._results: dict[int, list[TokenEvent] | BaseException] = {}
        self._decoding = False
        self._idle_since = time.monotonic()
        self._last_batch: set[PooledEngine] = set()  # the runs the next round expects back
        self._last_round_s = 0.0
        self.rounds = 0  # decode rounds run (each covers one or more engines)
        self.shared_rounds = 0  # rounds that decoded more than one engine's branches
        self.mixed_rounds = 0  # rounds that fed a new run's prompt beside other runs' branches
        # Rounds that left a busy run out (it did not ask within the gather window): each costs
        # the busy run a round of its own, another pass over the weights.
        self.short_rounds = 0
        self.round_s = 0.0  # time inside rounds (decode and sampling), to compare with wall time

    def join(self, engine: PooledEngine) -> None:
        with self._cond:
            self._engines.add(engine)

    def leave(self, engine: PooledEngine) -> None:
        with self._cond:
            self._engines.discard(engine)
            self._cond.notify_all()  # a gatherer may be waiting for this engine

    def step(self, engine: PooledEngine) -> list[TokenEvent]:
        with self._cond:
            self._waiting.append(engine)
            self._cond.notify_all()
            while id(engine) not in self._results:
                if self._decoding:
                    self._cond.wait()
                    continue
                missing = [e for e in self._engines if e.wants_step() and e not in self._waiting]
                handing = [e for e in self._last_batch if e.handing_over()]
                wait = self._idle_since + self._window(missing + handing) - time.monotonic()
                if (missing or handing) and wait > 0:
                    self._cond.wait(wait)
                    continue
                self.short_rounds += bool(missing)
                self._run_round()
            result = self._results.pop(id(engine))
        if isinstance(result, BaseException):
            raise result
        return result

    def _window(self, missing: list[PooledEngine]) -> float:
        """How long after the previous round this one waits for the busy runs in `missing`."""
        if not any(e in self._last_batch or e.joining for e in missing):
            return GATHER_S
        return max(GATHER_S, min(MAX_GATHER_S, ROUND_FRACTION * self._last_round_s))

    def _run_round(self) -> None:
        """Decode for every waiting engine; called holding the condition, released meanwhile."""
        batch, self._waiting = self._waiting, []
        self._decoding = True
        mixed = any(e.prefilling for e in batch) and any(not e.prefilling for e in batch)
        self._cond.release()
        t0 = time.perf_counter()
        try:
            try:
                with self._lock:
                    events = batch[0].step_together(batch)
                results: list[list[TokenEvent] | BaseException] = list(events)
            except BaseException as exc:  # every waiter gets the error, not just the decoder
                results = [exc] * len(batch)
        finally:
            self._cond.acquire()
        self._last_round_s = time.perf_counter() - t0
        self.round_s += self._last_round_s
        self._last_batch = set(batch)
        self._decoding = False
        self._idle_since = time.monotonic()
        self.rounds += 1
        self.shared_rounds += len(batch) > 1
        self.mixed_rounds += mixed
        for e, r in zip(batch, results, strict=True):
            self._results[id(e)] = r
        self._cond.notify_all()


class SharedContext:
    """The server's one context, its pool of sequences and the scheduler that batches steps."""

    def __init__(
        self,
        model: LlamaModel,
        *,
        max_branches: int,
        max_runs: int,
        ctx_per_branch: int,
        n_batch: int = 512,
        n_threads: int | None = None,
        flash_attn: bool = True,
        max_waiting: int = 16,
        acquire_timeout_s: float = 60.0,
        prompt_cache: bool = True,
    ) -> None:
        if max_branches < 1 or max_runs < 1:
            raise UsageError("--max-branches and --max-requests must be at least 1")
        self.model = model
        self.max_branches = max_branches
        # A prompt sequence per run in flight and one for nested engines (admission.py), then
        # the branches' and a spare (slots.py).
        n_prompts = max_runs + 1
        n_seq_max = n_prompts + max_branches + 1
        self.plan = ContextPlan(
            n_seq_max=n_seq_max,
            n_ctx_seq=ctx_per_branch,
            n_batch=max(n_batch, max_branches),
            kv_bytes=n_seq_max * ctx_per_branch * model.kv_bytes_per_token,
        )
        # Sequences below max_runs are the runs' prompts; the branches take the rest.
        self.context = DecodeContext(
            model, self.plan, first_seq=n_prompts, n_threads=n_threads, flash_attn=flash_attn
        )
        self.lock = self.context.lock
        prompt_seqs = list(range(n_prompts))
        self.prefixes = PrefixTable(prompt_seqs) if prompt_cache else None
        self.admission = Admission(
            max_branches,
            prompt_seqs,
            max_runs=max_runs,
            max_waiting=max_waiting,
            timeout_s=acquire_timeout_s,
            prefixes=self.prefixes,
        )
        self.scheduler = StepScheduler(self.lock)

    @property
    def free_branches(self) -> int:
        return self.admission.free_branches

    def give_back(
        self,
        seqs: Sequence[int],
        prompt: int,
        reserved: int,
        *,
        nested: bool = False,
        owner: object | None = None,
    ) -> None:
        """A closing engine's sequences (cleared), its prompt sequence (kept for the prompt
        cache, else cleared) and its reservation."""
        with self.lock:
            for seq in [*seqs, *([prompt] if self.prefixes is None else [])]:
                self.context.clear_seq(seq)
            for seq in seqs:
                self.context.slots.give(seq)
        self.admission.give_back(prompt, reserved, nested=nested, owner=owner)

    def open_engine(
        self,
        prompt_tokens: list[int],
        *,
        max_branches: int,
        max_tokens: int,
        slack_tokens: int = 64,
        logprobs: int = 0,
        budget: TokenBudget | None = None,
        cancelled: threading.Event | None = None,
        owner: object | None = None,
    ) -> PooledEngine:
        """What `Session.open_engine` gives a run on the server: an engine on this context.
        `owner` tells a run's engines apart from other runs' (admission.py)."""
        need = len(prompt_tokens) + max_tokens + slack_tokens
        if need > self.plan.n_ctx_seq:
            raise UsageError(
                f"the prompt ({len(prompt_tokens)} tokens) plus max_tokens ({max_tokens}) needs "
                f"{need} context cells a branch; this server has {self.plan.n_ctx_seq} "
                "(reason serve --ctx)"
            )
        engine = PooledEngine(
            self,
            max_branches=max_branches,
            logprobs=logprobs,
            budget=budget,
            cancelled=cancelled,
            prompt=prompt_tokens,
            owner=owner,
        )
        try:
            engine.set_prompt(prompt_tokens)
            engine.reserve_branches()  # the prompt is in: wait for branch slots
        except BaseException:
            engine.close()
            raise
        return engine

    def close(self) -> None:
        self.context.close()


class PooledEngine(BranchEngine):
    """A run's engine on the shared context: its own prompt and branch sequences from the pool.

    It is a `BranchEngine` on the shared `DecodeContext`; what differs is where its sequences
    come from and go back to, and that `step()` decodes in the scheduler's shared rounds.
    """

    def __init__(
        self,
        shared: SharedContext,
        *,
        max_branches: int,
        logprobs: int = 0,
        budget: TokenBudget | None = None,
        cancelled: threading.Event | None = None,
        prompt: Sequence[int] = (),
        owner: object | None = None,
    ) -> None:
        self._deadline = shared.admission.deadline()  # for the prompt sequence and the slots
        self.owner = owner
        prompt_seq, self.nested = shared.admission.take_prompt(
            max_branches, self._deadline, cancelled, prompt, owner
        )
        plan = ContextPlan(
            n_seq_max=max_branches + 1,
            n_ctx_seq=shared.plan.n_ctx_seq,
            n_batch=shared.plan.n_batch,
            kv_bytes=0,  # the shared context holds the KV
            max_branches=max_branches,
        )
        super().__init__(shared.context, plan, logprobs=logprobs, prompt_seq=prompt_seq)
        self.shared = shared
        self.budget = budget
        self.cancelled = cancelled
        self._closed = False
        self.prompt_tokens_cached = 0  # prompt tokens whose KV came from the prompt cache
        self._reserved = False  # whether its branch slots are reserved (reserve_branches)
        # Slots just came free for it and it has not stepped yet: the next round waits for it as
        # for a run of the previous round, so that freed slots do not sit out a round.
        self.joining = False
        shared.scheduler.join(self)

    def set_prompt(self, tokens: Sequence[int]) -> None:
        """Queue the prompt's tokens and feed them into the shared decode rounds (prompt_feed.py),
        returning once they are in: the running runs keep stepping meanwhile, each round taking
        a chunk of the prompt in the rows their branches leave free.

        With the prompt cache, the prompt sequence starts from the longest cached prefix of the
        prompt (its own KV trimmed, or another prompt sequence's copied) and only the rest is
        decoded: the KV of the same tokens at the same positions (tests/test_engine_prefix_cache.py
        finds the same tokens and log-probabilities as a full prefill)."""
        with self.context.lock:
            self._check_cancelled()
            self._check_prompt(tokens)
            body = list(tokens)
            seq = self.prompt_seq
            prefixes = self.shared.prefixes
            reused = 0
            if prefixes is None:
                self.context.clear_seq(seq)
            else:
                reuse = prefixes.plan(seq, body)
                prefixes.forget(seq)  # until its prefill succeeds
                if reuse.source is not None:  # queued; llama.cpp copies before the next decode
                    self.context.copy_seq(reuse.source, seq)
                # The last token is decoded even when cached: its logits give the first tokens.
                reused = min(reuse.tokens, len(body) - 1)
                self.context.trim_seq(seq, reused)
            self._prompt_tokens = list(tokens)
            self._feed.start(body, reused)
        try:
            while self._feed:
                self._check_cancelled()
                self.shared.scheduler.step(self)
        except BaseException:
            self._feed.drop()  # out of every round until it ends: no round feeds it any more
            raise
        if prefixes is not None:
            with self.context.lock:
                prefixes.record(seq, body, reused)
        self.prompt_tokens_cached += reused

    def reserve_branches(self) -> None:
        """Wait for this run's branch slots, behind the runs queued before it."""
        self.shared.admission.reserve(
            self._branch_limit,
            self._deadline,
            self.cancelled,
            on_grant=self._granted,
            owner=self.owner,
        )
        self._reserved = True

    def _granted(self) -> None:
        self.joining = True

    def _check_cancelled(self) -> None:
        """A request cancelled while it waited (client gone, server stopping) prefills no more:
        at shutdown every queued prefill would otherwise delay the rest."""
        if self.cancelled is not None and self.cancelled.is_set():
            raise WaitCancelled("the request was cancelled before its prompt was decoded")

    def wants_step(self) -> bool:
        """Whether this run has rows for the next round: prompt tokens or live branches."""
        return not self._closed and (
            self.joining or self.prefilling or any(not b.done and b.pending for b in self._branches)
        )

    def handing_over(self) -> bool:
        """Its branches are done but it has not closed, and a run waits for slots: closing,
        it will hand its slots to that run, which the next round should wait for."""
        return (
            not self._closed
            and self._reserved
            and not self.wants_step()
            and self.shared.admission.queued > 0
        )

    def step(self) -> list[TokenEvent]:
        # A new run's first step only samples its branches' first tokens: it takes no round, so
        # its first rows join the very next one (which waits for it while it is `joining`)
        # instead of leaving its slots idle for a round of their own.
        events = self.first_tokens()
        if events is None:
            self.joining = False
            events = self.shared.scheduler.step(self)
        budget = self.budget
        if budget is None or not budget.spend(sum(e.token is not None for e in events)):
            return events
        cut: list[TokenEvent] = []
        for e in events:
            if not e.finished:
                e.branch.finish_reason = "length"
                e = TokenEvent(e.branch, e.token, e.text, True)
            cut.append(e)
        return cut

    def close(self) -> None:
        """Give every sequence back to the pool at once (a cancelled request frees its slots);
        the context stays open for the other runs."""
        if self._closed:
            return
        self._closed = True
        self.joining = False
        held: list[int] = []
        with self.context.lock:  # a round on another thread may be moving sequences
            self._free_samplers()
            for b in self._branches:
                b.finish_reason = b.finish_reason or "stopped"
                if b.seq >= 0:
                    held.append(b.seq)
                b.seq = -1
            self._held = 0
        # Slots first, then the scheduler: the round that waited for this run's hand-over then
        # sees the run its slots went to (`joining`) before it stops waiting.
        reserved = self._branch_limit if self._reserved else 0
        self.shared.give_back(held, self.prompt_seq, reserved, nested=self.nested, owner=self.owner)
        self.shared.scheduler.leave(self)

    def __enter__(self) -> PooledEngine:
        return self
