"""Size a llama.cpp context from the request, and refuse requests that cannot fit.

llama.cpp aborts the whole process on several impossible configurations (a sequence id past
`n_seq_max`, a batch larger than `n_batch`, KV memory it cannot allocate). We check first and
raise `ResourceError` with a suggestion instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from reasoncli.errors import ResourceError

MAX_SEQUENCES = 256  # LLAMA_MAX_SEQ in llama.cpp
CTX_ALIGN = 256  # llama.cpp pads context sizes to this


@dataclass(frozen=True)
class ContextPlan:
    n_seq_max: int  # branches alive at once, plus the sequence that holds the shared prompt
    n_ctx_seq: int  # cells per sequence (KV is split per sequence: kv_unified=False)
    n_batch: int
    kv_bytes: int

    @property
    def n_ctx(self) -> int:
        return self.n_seq_max * self.n_ctx_seq


def _align(n: int) -> int:
    return -(-n // CTX_ALIGN) * CTX_ALIGN


def available_memory_bytes() -> int | None:
    """Memory the OS can give us now (Linux MemAvailable, else total physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def plan_context(
    *,
    n_prompt: int,
    max_new_tokens: int,
    max_branches: int,
    n_ctx_train: int,
    kv_bytes_per_token: int,
    weights_bytes: int = 0,
    slack_tokens: int = 64,
    memory_limit: int | None = None,
) -> ContextPlan:
    """Return the smallest context that serves the request, or explain why none can."""
    if max_branches < 1:
        raise ResourceError("at least one branch is needed")
    n_seq_max = max_branches + 1
    if n_seq_max > MAX_SEQUENCES:
        raise ResourceError(
            f"{max_branches} branches exceed llama.cpp's limit of {MAX_SEQUENCES - 1} "
            "concurrent sequences; use fewer --branches"
        )
    needed = n_prompt + max_new_tokens + slack_tokens
    if n_ctx_train and needed > n_ctx_train:
        raise ResourceError(
            f"prompt ({n_prompt} tokens) + max tokens ({max_new_tokens}) exceeds the model's "
            f"context window of {n_ctx_train} tokens; lower --max-tokens or shorten the question"
        )
    n_ctx_seq = _align(needed)
    if n_ctx_train:
        n_ctx_seq = min(n_ctx_seq, _align(n_ctx_train))
    kv_bytes = n_seq_max * n_ctx_seq * kv_bytes_per_token
    limit = memory_limit if memory_limit is not None else available_memory_bytes()
    if limit is not None and kv_bytes + weights_bytes > 0.9 * limit:
        gib = (kv_bytes + weights_bytes) / 2**30
        raise ResourceError(
            f"{max_branches} branches x {n_ctx_seq} tokens need about {gib:.1f} GiB "
            f"(KV cache + weights) but only {limit / 2**30:.1f} GiB is available; "
            "use fewer --branches or a smaller --max-tokens"
        )
    n_batch = max(512, n_seq_max)
    return ContextPlan(n_seq_max=n_seq_max, n_ctx_seq=n_ctx_seq, n_batch=n_batch, kv_bytes=kv_bytes)
