"""A llama.cpp context and what every engine decoding on it shares.

A `BranchEngine` of the CLI owns its `DecodeContext`; the server's engines (pool.py) share one.
Either way the engine reaches llama.cpp only through it: the batch buffer it fills, the thread
share it decodes with (core_share.py), the pool of sequence ids its branches take (slots.py),
and the lock that every call touching the context's memory holds (a context is not
thread-safe; an engine of the CLI never contends for it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reasoncli.engine.core_share import ThreadShare
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.sizing import ContextPlan
from reasoncli.engine.slots import SeqSlots
from reasoncli.errors import ReasonError, ResourceError

PROMPT_SEQ = 0  # an engine of its own context decodes its prompt into sequence 0


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


class DecodeContext:
    """A context sized by `plan`, whose branch sequences are the ids from `first_seq` up."""

    def __init__(
        self,
        model: LlamaModel,
        plan: ContextPlan,
        *,
        first_seq: int = PROMPT_SEQ + 1,
        n_threads: int | None = None,
        flash_attn: bool = True,
        tuning: ContextTuning | None = None,
    ) -> None:
        self.lib = model.lib
        self.model = model
        self.n_batch = plan.n_batch
        self.ctx: Any = open_context(
            model, plan, n_threads=n_threads, flash_attn=flash_attn, tuning=tuning
        )
        self.memory = self.lib.llama_get_memory(self.ctx)
        self.batch: Any = self.lib.llama_batch_init(plan.n_batch, 0, 1)
        self.n_threads = n_threads or default_threads()
        # A thread count the user chose stays; the default shares the cores (core_share.py).
        base_batch = (tuning.n_threads_batch if tuning else None) or self.n_threads
        self.threads = ThreadShare(self.n_threads, base_batch, fixed=n_threads is not None)
        self.split_kv = not (tuning and tuning.kv_unified)  # one stream a sequence: compact ids
        self.slots = SeqSlots(range(first_seq, plan.n_seq_max))
        self.lock = threading.RLock()
        # What llama_decode itself took and how many rows it decoded: a server's round time
        # minus this is the Python around it (sampling, text, scheduling).
        self.decode_s = 0.0
        self.rows_decoded = 0

    # -- sequences ------------------------------------------------------------------------------
    def copy_seq(self, src: int, dst: int) -> None:
        """Give `dst` the KV of `src` (a full-range copy: all llama.cpp allows across streams)."""
        self.lib.llama_memory_seq_cp(self.memory, src, dst, -1, -1)

    def clear_seq(self, seq: int) -> None:
        self.lib.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def trim_seq(self, seq: int, position: int) -> None:
        """Drop `seq`'s KV from `position` on, so decoding goes on from there."""
        self.lib.llama_memory_seq_rm(self.memory, seq, position, -1)

    # -- decoding -------------------------------------------------------------------------------
    def fill_batch(self, rows: Iterable[tuple[int, int, int, bool]]) -> None:
        """(token, position, sequence, wants logits) rows into the batch buffer."""
        batch = self.batch
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

    def decode(self) -> None:
        """Decode the filled batch."""
        self.threads.before_decode(self.lib, self.ctx)
        t0 = time.perf_counter()
        rc = self.lib.llama_decode(self.ctx, self.batch)
        self.decode_s += time.perf_counter() - t0
        self.rows_decoded += self.batch.n_tokens
        if rc == 1:
            raise ResourceError("the KV cache is full; use fewer branches or fewer tokens")
        if rc != 0:
            raise ReasonError(f"llama_decode failed with code {rc}")

    def close(self) -> None:
        if self.batch is not None:
            self.lib.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            self.lib.llama_free(self.ctx)
            self.ctx = None


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
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        n = os.cpu_count() or 1
    return max(1, min(n, 16))
