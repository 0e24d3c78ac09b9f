"""Which llama.cpp backend this build has and a run used: for `reason doctor` and for the
`backend` of a run's `--json` result."""

from __future__ import annotations

from dataclasses import dataclass

from reasoncli.engine import cpu_buffers
from reasoncli.engine.context import default_threads
from reasoncli.engine.machine import gpu_devices
from reasoncli.engine.model import LlamaModel, load_llama_cpp
from reasoncli.engine.sizing import offload_for


@dataclass(frozen=True)
class BackendInfo:
    name: str
    """The backend llama.cpp offloads to ("CUDA", "Metal", "Vulkan", ...) or "CPU"."""
    gpu_offload: bool
    compiled: list[str]
    """Every backend in this llama-cpp-python build, from `llama_print_system_info`."""
    cpu_features: list[str]
    llama_cpp_python: str | None


def parse_system_info(text: str) -> tuple[list[str], list[str]]:
    """(backends, CPU features) from llama.cpp's `NAME : KEY = 1 | KEY = 1 | NAME : ...`."""
    backends: list[str] = []
    features: list[str] = []
    current = ""
    for segment in text.split("|"):
        head, sep, rest = segment.partition(" : ")
        if sep:
            current = head.strip()
            backends.append(current)
            segment = rest
        key, _, value = segment.partition("=")
        if current == "CPU" and value.strip() == "1":
            features.append(key.strip())
    return backends, features


def detect_backend() -> BackendInfo:
    lib = load_llama_cpp()
    text = lib.llama_print_system_info().decode("utf-8", errors="replace")
    compiled, features = parse_system_info(text)
    gpu = bool(lib.llama_supports_gpu_offload())
    name = "CPU"
    if gpu:
        devices = gpu_devices()
        others = [b for b in compiled if b not in ("CPU", "BLAS")]
        name = devices[0].backend if devices else (others[0] if others else "GPU")
    return BackendInfo(name, gpu, compiled, features, getattr(lib, "__version__", None))


def active_backend(model: LlamaModel, threads: int | None) -> dict[str, object]:
    """What a finished run used, for `--json` output: backend, offloaded layers, threads."""
    offload = offload_for(model)
    name = detect_backend().name if offload.gpu_layers > 0 else "CPU"
    buffers = cpu_buffers.current()
    return {
        "name": name,
        "gpu_layers": offload.gpu_layers,
        "n_layer": offload.n_layer,
        "threads": threads or default_threads(),
        "cpu_extra_buffers": list(buffers.in_use) if buffers else None,
    }
