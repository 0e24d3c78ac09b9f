"""Size a llama.cpp context from the request, and refuse requests that cannot fit.

llama.cpp aborts the whole process on several impossible configurations (a sequence id past
`n_seq_max`, a batch larger than `n_batch`, KV memory it cannot allocate). We check first and
raise `ResourceError` with a suggestion instead.

The memory estimate here is the one `reason doctor` shows, so "doctor says it fits" and "ask
runs" agree: weights + KV cache + compute buffers, split between RAM and GPU memory by the
share of layers offloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reasoncli.engine.machine import MemoryInfo, detect_memory
from reasoncli.errors import ResourceError

if TYPE_CHECKING:  # the model module loads llama.cpp's bindings lazily; sizing stays light
    from reasoncli.engine.model import LlamaModel

MAX_SEQUENCES = 256  # LLAMA_MAX_SEQ in llama.cpp
CTX_ALIGN = 256  # llama.cpp pads context sizes to this
N_UBATCH = 512  # BranchEngine's micro-batch: llama.cpp reserves compute buffers for it
BUFFER_SLACK = 64 * 2**20
"""Activations and scratch beyond the logits buffers (measured ~3 MiB on SmolLM2; larger
models need more)."""


@dataclass(frozen=True)
class ContextPlan:
    n_seq_max: int  # the prompt's sequence, the branches', and a spare (see `sequences_for`)
    n_ctx_seq: int  # cells per sequence (KV is split per sequence: kv_unified=False)
    n_batch: int
    kv_bytes: int
    max_branches: int | None = None  # branches alive at once; None: every sequence but one

    @property
    def branch_limit(self) -> int:
        return self.max_branches if self.max_branches is not None else self.n_seq_max - 1

    @property
    def n_ctx(self) -> int:
        return self.n_seq_max * self.n_ctx_seq


@dataclass(frozen=True)
class Offload:
    """Where llama.cpp puts the model: `gpu_layers` of `n_layer` layers (and their KV cache)
    on the GPU, the rest in RAM. The default is a CPU run. `n_vocab` sizes the logits
    buffers, the largest compute buffer for small models."""

    gpu_layers: int = 0
    n_layer: int = 0
    n_vocab: int = 0

    @property
    def gpu_fraction(self) -> float:
        if self.gpu_layers <= 0 or self.n_layer <= 0:
            return 0.0
        return min(self.gpu_layers, self.n_layer) / self.n_layer


def offload_for(model: LlamaModel) -> Offload:
    """The placement a loaded `LlamaModel` actually got (a CPU-only build offloads nothing,
    whatever `--gpu-layers` says)."""
    lib = model.lib
    n_layer = int(lib.llama_model_n_layer(model.model))
    layers = int(model.gpu_layers)
    if not lib.llama_supports_gpu_offload():
        layers = 0
    elif layers < 0:
        layers = n_layer
    return Offload(gpu_layers=min(layers, n_layer), n_layer=n_layer, n_vocab=int(model.n_vocab))


# --------------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_bytes: int
    buffer_bytes: int
    """Compute and output buffers: logits for a micro-batch and for each sequence."""
    ram_bytes: int
    vram_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.buffer_bytes


def estimate_memory(
    *,
    weights_bytes: int,
    kv_bytes_per_token: int,
    n_seq: int,
    n_ctx_seq: int,
    offload: Offload = Offload(),
) -> MemoryEstimate:
    """Bytes a context of `n_seq` sequences x `n_ctx_seq` cells needs, and where they live.

    Offloaded layers keep their KV cache on the GPU (llama.cpp's default `offload_kqv`), and the
    compute buffers follow the GPU when there is one."""
    kv = n_seq * n_ctx_seq * kv_bytes_per_token
    buffers = 0
    if offload.n_vocab:
        buffers = 4 * offload.n_vocab * (N_UBATCH + n_seq) + BUFFER_SLACK
    f = offload.gpu_fraction
    on_gpu = int(f * (weights_bytes + kv))
    vram = on_gpu + (buffers if f > 0 else 0)
    ram = weights_bytes + kv - on_gpu + (0 if f > 0 else buffers)
    return MemoryEstimate(weights_bytes, kv, buffers, ram, vram)


@dataclass(frozen=True)
class FitCheck:
    fits: bool | None
    """None when no limit is known for the memory that matters."""
    where: str
    """"RAM" or "VRAM": the memory that binds (or the one with less headroom)."""
    need_bytes: int
    usable_bytes: int | None


def check_fit(estimate: MemoryEstimate, memory: MemoryInfo) -> FitCheck:
    checks = []
    for where, need in (("RAM", estimate.ram_bytes), ("VRAM", estimate.vram_bytes)):
        if where == "VRAM" and need == 0:
            continue
        usable = memory.usable(where)
        checks.append(FitCheck(None if usable is None else need <= usable, where, need, usable))
    failed = [c for c in checks if c.fits is False]
    if failed:  # the worst overshoot is the one to report
        return max(failed, key=lambda c: c.need_bytes / max(c.usable_bytes or 1, 1))
    unknown = [c for c in checks if c.fits is None]
    if unknown:
        return unknown[0]
    return min(checks, key=lambda c: (c.usable_bytes or 0) - c.need_bytes)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n < 10 * 2**30 else f"{n / 2**30:.1f} GiB"


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def sequences_for(branches: int) -> int:
    """llama.cpp sequences a run of `branches` needs: one for the prompt, one per branch, and
    with several branches one spare, so that a branch can always be moved to close a gap
    between live sequence ids (slots.py) even when finished branches hold the others."""
    return branches + 1 + (branches > 1)


def _align(n: int) -> int:
    return -(-n // CTX_ALIGN) * CTX_ALIGN


@dataclass(frozen=True)
class Assessment:
    """One request sized against one machine; `plan_context` raises when it does not fit and
    `reason doctor` shows it."""

    branches: int
    n_seq_max: int
    n_ctx_seq: int
    n_batch: int
    estimate: MemoryEstimate
    fit: FitCheck
    max_branches: int | None
    """Most branches that fit at this token budget (None: no limit known)."""
    max_tokens: int | None
    """Most new tokens per branch that fit at this branch count (None: no limit known)."""
    max_gpu_layers: int | None
    """When the GPU is what does not fit: most layers it can hold (None otherwise)."""
    smaller: tuple[int, int] | None = None
    """(branches, tokens) that fit when cutting one of them alone is not enough."""

    @property
    def plan(self) -> ContextPlan:
        return ContextPlan(
            self.n_seq_max, self.n_ctx_seq, self.n_batch, self.estimate.kv_bytes, self.branches
        )

    def refusal(self) -> str:
        """Why it does not fit and what would, as one line."""
        e, fit = self.estimate, self.fit
        parts = f"weights {_size(e.weights_bytes)} + KV cache {_size(e.kv_bytes)}"
        if e.buffer_bytes:
            parts += f" + buffers {_size(e.buffer_bytes)}"
        memory = "GPU memory" if fit.where == "VRAM" else "memory"
        msg = (
            f"{self.branches} branches x {self.n_ctx_seq} tokens need about "
            f"{_gib(fit.need_bytes)} of {memory} ({parts}) but only "
            f"{_gib(fit.usable_bytes or 0)} is available"
        )
        tips = []
        if self.max_branches:
            tips.append(f"--branches {self.max_branches}")
        if self.max_tokens:
            tips.append(f"--max-tokens {self.max_tokens}")
        if self.max_gpu_layers is not None:
            tips.append(f"--gpu-layers {self.max_gpu_layers} (keep the rest in RAM)")
        if not tips and self.smaller is not None:
            tips.append(f"--branches {self.smaller[0]} --max-tokens {self.smaller[1]}")
        if tips:
            return f"{msg}; try {' or '.join(tips)}"
        return f"{msg}; even one short branch does not fit: use a smaller model or quantization"


@dataclass(frozen=True)
class ContextRequest:
    """What a context is sized for: the request and the model facts that turn it into bytes.
    `assess_request` and `plan_context` both take it whole."""

    n_prompt: int
    max_new_tokens: int
    max_branches: int
    n_ctx_train: int  # the model's training context; 0: unknown, no window check
    kv_bytes_per_token: int
    weights_bytes: int = 0
    slack_tokens: int = 64  # cells past prompt + max_new_tokens


def assess_request(
    request: ContextRequest,
    *,
    offload: Offload = Offload(),
    memory: MemoryInfo | None = None,
) -> Assessment:
    """Size the request and check it against memory; ResourceError only for requests no
    machine could serve (too many sequences, past the context window)."""
    r = request
    if r.max_branches < 1:
        raise ResourceError("at least one branch is needed")
    if sequences_for(r.max_branches) > MAX_SEQUENCES:
        raise ResourceError(
            f"{r.max_branches} branches exceed llama.cpp's limit of {MAX_SEQUENCES - 2} "
            "concurrent sequences; use fewer --branches"
        )
    needed = r.n_prompt + r.max_new_tokens + r.slack_tokens
    if r.n_ctx_train and needed > r.n_ctx_train:
        raise ResourceError(
            f"prompt ({r.n_prompt} tokens) + max tokens ({r.max_new_tokens}) exceeds the model's "
            f"context window of {r.n_ctx_train} tokens; lower --max-tokens or shorten the question"
        )
    if memory is None:
        memory = detect_memory(gpu=offload.gpu_fraction > 0)

    def ctx_for(tokens: int) -> int:
        n = _align(r.n_prompt + tokens + r.slack_tokens)
        return min(n, _align(r.n_ctx_train)) if r.n_ctx_train else n

    def estimate_for(branches: int, tokens: int, placement: Offload) -> MemoryEstimate:
        return estimate_memory(
            weights_bytes=r.weights_bytes,
            kv_bytes_per_token=r.kv_bytes_per_token,
            n_seq=sequences_for(branches),
            n_ctx_seq=ctx_for(tokens),
            offload=placement,
        )

    def fit_for(branches: int, tokens: int, layers: int = offload.gpu_layers) -> FitCheck:
        placement = Offload(layers, offload.n_layer, offload.n_vocab)
        return check_fit(estimate_for(branches, tokens, placement), memory)

    def largest(lo: int, hi: int, ok: Callable[[int], bool | None]) -> int | None:
        """Largest n in [lo, hi] with ok(n), for ok monotone decreasing; None if none."""
        if hi < lo or not ok(lo):
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
        return lo

    branches, tokens = r.max_branches, r.max_new_tokens
    estimate = estimate_for(branches, tokens, offload)
    fit = check_fit(estimate, memory)
    best_branches = best_tokens = best_layers = None
    smaller: tuple[int, int] | None = None
    if fit.fits is not None:
        cap = MAX_SEQUENCES - 2 if fit.fits else branches - 1
        best_branches = largest(1, cap, lambda b: fit_for(b, tokens).fits)
        if fit.fits:  # how far the budget could grow, up to the context window
            window = r.n_ctx_train - r.n_prompt - r.slack_tokens if r.n_ctx_train else 1 << 20
            best_tokens = largest(tokens, window, lambda t: fit_for(branches, t).fits)
        else:
            best_tokens = largest(1, tokens - 1, lambda t: fit_for(branches, t).fits)
            if fit.where == "VRAM" and offload.gpu_layers > 0:
                best_layers = largest(
                    0, offload.gpu_layers - 1, lambda k: fit_for(branches, tokens, k).fits
                )
            if best_branches is None and best_tokens is None:
                # Cut both: the most branches at the smallest context, then its token budget.
                b = largest(1, branches, lambda b: fit_for(b, 1).fits)
                t = largest(1, tokens, lambda t: fit_for(b, t).fits) if b else None
                smaller = (b, t) if b and t else None
    return Assessment(
        branches=branches,
        n_seq_max=sequences_for(branches),
        n_ctx_seq=ctx_for(tokens),
        n_batch=max(512, branches + 1),
        estimate=estimate,
        fit=fit,
        max_branches=best_branches,
        max_tokens=best_tokens,
        max_gpu_layers=best_layers,
        smaller=smaller,
    )


def plan_context(
    request: ContextRequest,
    *,
    memory_limit: int | None = None,
    offload: Offload | None = None,
    memory: MemoryInfo | None = None,
) -> ContextPlan:
    """Return the smallest context that serves the request, or explain why none can.

    `memory_limit` pins the free memory (tests, benchmarks); otherwise it is measured, capped
    by `REASON_MEMORY_LIMIT`."""
    if memory is None and memory_limit is not None:
        memory = MemoryInfo(ram_available=memory_limit, vram_free=memory_limit)
    assessment = assess_request(request, offload=offload or Offload(), memory=memory)
    if assessment.fit.fits is False:
        raise ResourceError(assessment.refusal())
    return assessment.plan


def plan_for_model(
    model: LlamaModel,
    *,
    n_prompt: int,
    max_new_tokens: int,
    max_branches: int,
    slack_tokens: int = 64,
) -> ContextPlan:
    """`plan_context` for a loaded `LlamaModel`: its training context, KV bytes per token,
    weights and the placement it actually got."""
    request = ContextRequest(
        n_prompt=n_prompt,
        max_new_tokens=max_new_tokens,
        max_branches=max_branches,
        n_ctx_train=model.n_ctx_train,
        kv_bytes_per_token=model.kv_bytes_per_token,
        weights_bytes=model.size_bytes,
        slack_tokens=slack_tokens,
    )
    return plan_context(request, offload=offload_for(model))
