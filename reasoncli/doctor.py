"""`reason doctor`: the llama.cpp backend in use, what the machine has, and which installed
models fit a request of N branches x T tokens.

The verdicts come from `engine.sizing.assess_request`, the code `reason ask` uses to refuse a
run, fed with the same numbers (weights = tensor bytes, KV bytes per token, layers, vocabulary)
read from the GGUF header instead of a loaded model. So doctor and ask cannot disagree about
the arithmetic, and doctor stays fast: no weights are loaded.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reasoncli.engine import core_share, cpu_buffers
from reasoncli.engine.backend import BackendInfo, detect_backend
from reasoncli.engine.cpu_buffers import BufferChoice
from reasoncli.engine.machine import (
    MemoryInfo,
    available_memory_bytes,
    gpu_devices,
    memory_limit_from_env,
    total_memory_bytes,
)
from reasoncli.engine.sizing import (
    Assessment,
    ContextRequest,
    Offload,
    assess_request,
)
from reasoncli.errors import ModelError, ResourceError

CUDA_INSTALL = (
    'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)
METAL_INSTALL = (
    'CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)


# --------------------------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    name: str
    backend: str | None
    free_bytes: int | None
    total_bytes: int | None
    source: str
    """"llama.cpp" (the devices it will use) or "nvidia-smi" (present, maybe unused)."""


def nvidia_smi() -> list[Gpu] | None:
    """NVIDIA GPUs by nvidia-smi; None when the tool is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        name, total, free = parts
        mib = 2**20
        gpus.append(
            Gpu(
                name,
                None,
                int(free) * mib if free.isdigit() else None,
                int(total) * mib if total.isdigit() else None,
                "nvidia-smi",
            )
        )
    return gpus


@dataclass(frozen=True)
class Hardware:
    backend: BackendInfo
    threads: int
    """What llama.cpp gets unless `--threads` says otherwise."""
    cpus: int | None
    ram_total: int | None
    ram_available: int | None
    memory_limit: int | None
    gpus: list[Gpu]
    hints: list[str] = field(default_factory=list)
    cpu_flags: list[str] = field(default_factory=list)
    """AVX2/AVX512/AMX flags the CPU reports (cpu_buffers.CPU_FLAGS)."""
    extra_buffers: BufferChoice | None = None
    """Which extra CPU weight buffers llama.cpp loads into, and why."""
    share_cores: bool = True
    """Whether concurrent runs share the cores (engine/core_share.py)."""

    @property
    def memory(self) -> MemoryInfo:
        """What fit checks plan against: GPU memory only counts when llama.cpp can use it."""
        free = [g.free_bytes for g in self.gpus if g.free_bytes] if self.backend.gpu_offload else []
        return MemoryInfo(self.ram_available, sum(free) if free else None, self.memory_limit)


def detect_hardware() -> Hardware:
    from reasoncli.engine.branches import default_threads

    backend = detect_backend()
    gpus = [
        Gpu(d.description or d.name, d.backend, d.free_bytes, d.total_bytes, "llama.cpp")
        for d in (gpu_devices() if backend.gpu_offload else [])
    ]
    hints: list[str] = []
    smi = nvidia_smi() if not gpus else None
    if smi:  # llama.cpp sees no GPU device: say what is there, and why it goes unused
        gpus = smi
        if not backend.gpu_offload:
            hints.append(
                f"an NVIDIA GPU is present but llama-cpp-python has no CUDA backend: {CUDA_INSTALL}"
            )
    elif (
        not backend.gpu_offload
        and platform.system() == "Darwin"
        and platform.machine()
        in (
            "arm64",
            "aarch64",
        )
    ):
        hints.append(f"Apple Silicon without Metal in llama-cpp-python: {METAL_INSTALL}")
    return Hardware(
        cpu_flags=cpu_buffers.cpu_flags(),
        extra_buffers=cpu_buffers.current(),
        share_cores=core_share.sharing_enabled(),
        backend=backend,
        threads=default_threads(),
        cpus=os.cpu_count(),
        ram_total=total_memory_bytes(),
        ram_available=available_memory_bytes(),
        memory_limit=memory_limit_from_env(),
        gpus=gpus,
        hints=hints,
    )


# --------------------------------------------------------------------------------------------
# What fits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitRequest:
    branches: int = 8
    max_tokens: int = 512
    prompt_tokens: int = 256
    """A typical chat prompt with the reasoning system message is 60-200 tokens."""
    gpu_layers: int | None = None
    """None: all layers when the backend can offload (as `reason ask`)."""


@dataclass(frozen=True)
class ModelFit:
    name: str
    path: Path | None
    assessment: Assessment | None
    """None when the model could not be assessed (see `problem`)."""
    problem: str | None = None
    """Why not: not installed, unreadable header, past the context window."""
    offload: Offload | None = None

    @property
    def fits(self) -> bool | None:
        if self.assessment is None:
            return False if self.problem and "context window" in self.problem else None
        return self.assessment.fit.fits


def offload_from_gguf(info: Any, backend: BackendInfo, gpu_layers: int | None) -> Offload:
    """The placement `LlamaModel` would get for this file (see `sizing.offload_for`)."""
    n_layer = int(info.block_count or 0)
    layers = 0
    if backend.gpu_offload:
        layers = n_layer if gpu_layers is None or gpu_layers < 0 else min(gpu_layers, n_layer)
    return Offload(gpu_layers=layers, n_layer=n_layer, n_vocab=int(info.vocab_size or 0))


def assess_file(
    name: str, path: Path, request: FitRequest, backend: BackendInfo, memory: MemoryInfo
) -> ModelFit:
    from reasoncli.models.gguf_file import kv_bytes_per_token, read_gguf_info

    try:
        info = read_gguf_info(path)
    except ModelError as exc:
        return ModelFit(name, path, None, str(exc))
    offload = offload_from_gguf(info, backend, request.gpu_layers)
    try:
        shape = ContextRequest(
            n_prompt=request.prompt_tokens,
            max_new_tokens=request.max_tokens,
            max_branches=request.branches,
            n_ctx_train=info.context_length or 0,
            kv_bytes_per_token=kv_bytes_per_token(info),
            weights_bytes=info.tensor_bytes or info.file_size,
        )
        assessment = assess_request(shape, offload=offload, memory=memory)
    except ResourceError as exc:
        return ModelFit(name, path, None, str(exc), offload)
    return ModelFit(name, path, assessment, None, offload)


def check_models(
    request: FitRequest, hardware: Hardware, names: list[str] | None = None
) -> list[ModelFit]:
    """Assess every installed model (or just `names`: registry names or .gguf paths)."""
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.install import check_installed
    from reasoncli.models.resolve import resolve_model

    catalog = load_catalog()
    targets: list[tuple[str, Path | None, str]] = []
    if names:
        for n in names:
            spec = catalog.find(n)
            if spec is not None:
                inst = check_installed(spec)
                targets.append((spec.name, inst.path, inst.detail))
            else:  # a .gguf path or a pulled owner/repo:QUANT; unknown names raise
                resolved = resolve_model(n, catalog)
                targets.append((resolved.spec.name, resolved.path, ""))
    else:
        for spec in catalog:
            inst = check_installed(spec)
            if inst.installed:
                targets.append((spec.name, inst.path, inst.detail))
    fits = []
    for name, path, detail in targets:
        if path is None:
            why = detail or "not prepared yet: run it once (its file is assembled on first use)"
            fits.append(ModelFit(name, None, None, why))
        else:
            fits.append(assess_file(name, path, request, hardware.backend, hardware.memory))
    return fits


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DoctorReport:
    hardware: Hardware
    request: FitRequest
    models: list[ModelFit]

    def to_json(self) -> dict[str, Any]:
        hw = self.hardware
        return {
            "backend": asdict(hw.backend),
            "threads": {"default": hw.threads, "cpus": hw.cpus, "share_cores": hw.share_cores},
            "cpu": {
                "flags": hw.cpu_flags,
                "extra_buffers": hw.extra_buffers.as_dict() if hw.extra_buffers else None,
            },
            "memory": {
                "ram_total": hw.ram_total,
                "ram_available": hw.ram_available,
                "limit": hw.memory_limit,
            },
            "gpus": [asdict(g) for g in hw.gpus],
            "hints": hw.hints,
            "request": asdict(self.request),
            "models": [_fit_json(m) for m in self.models],
        }


def _fit_json(m: ModelFit) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": m.name,
        "path": str(m.path) if m.path else None,
        "fits": m.fits,
        "problem": m.problem,
        "gpu_layers": m.offload.gpu_layers if m.offload else None,
        "n_layer": m.offload.n_layer if m.offload else None,
    }
    a = m.assessment
    if a is not None:
        e = a.estimate
        out.update(
            where=a.fit.where,
            need_bytes=a.fit.need_bytes,
            usable_bytes=a.fit.usable_bytes,
            weights_bytes=e.weights_bytes,
            kv_bytes=e.kv_bytes,
            buffer_bytes=e.buffer_bytes,
            ram_bytes=e.ram_bytes,
            vram_bytes=e.vram_bytes,
            n_ctx_seq=a.n_ctx_seq,
            max_branches=a.max_branches,
            max_tokens=a.max_tokens,
            max_gpu_layers=a.max_gpu_layers,
            message=a.refusal() if a.fit.fits is False else None,
        )
    return out


def run_doctor(request: FitRequest, names: list[str] | None = None) -> DoctorReport:
    hardware = detect_hardware()
    return DoctorReport(hardware, request, check_models(request, hardware, names))


def human_backend(backend: BackendInfo) -> str:
    extra = [b for b in backend.compiled if b != backend.name]
    built = f" (also built: {', '.join(extra)})" if extra else ""
    offload = "GPU offload" if backend.gpu_offload else "no GPU offload"
    version = f", llama-cpp-python {backend.llama_cpp_python}" if backend.llama_cpp_python else ""
    return f"{backend.name}{built}; {offload}{version}"
