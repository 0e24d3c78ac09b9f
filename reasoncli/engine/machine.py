"""What the machine has: free RAM, a memory limit from the environment, and llama.cpp's GPU
devices with their free memory. Read by `sizing` (does a request fit?) and `reason doctor`."""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass

from reasoncli.errors import ResourceError

MEMORY_LIMIT_ENV = "REASON_MEMORY_LIMIT"
SAFETY = 0.9
"""Plan for at most this share of free memory: the OS, fragmentation and estimate error need
the rest."""


@dataclass(frozen=True)
class GpuDevice:
    name: str
    description: str
    backend: str  # the ggml backend: CUDA, Metal, Vulkan, ...
    free_bytes: int | None
    total_bytes: int | None


@dataclass(frozen=True)
class MemoryInfo:
    """Free memory to plan against; None where unknown (no check is made then)."""

    ram_available: int | None
    vram_free: int | None = None
    limit: int | None = None
    """`REASON_MEMORY_LIMIT` (or a test's `memory_limit`) capping both, if set."""

    def usable(self, where: str) -> int | None:
        free = self.vram_free if where == "VRAM" else self.ram_available
        if self.limit is not None:
            free = self.limit if free is None else min(free, self.limit)
        return None if free is None else int(free * SAFETY)


def parse_bytes(text: str) -> int:
    """`8G`, `8GiB`, `512M`, `1.5GB` or a plain byte count; binary units (1G = 2**30), since
    memory is sold and reported that way."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r} (try 8G or 512M)")
    scale = 1024 ** " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * scale)


def memory_limit_from_env() -> int | None:
    value = os.environ.get(MEMORY_LIMIT_ENV)
    if not value:
        return None
    try:
        return parse_bytes(value)
    except ValueError as exc:
        raise ResourceError(f"{MEMORY_LIMIT_ENV}: {exc}") from None


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                fields = rest.split()
                if fields and fields[0].isdigit():
                    out[key] = int(fields[0]) * 1024
    except OSError:
        pass
    return out


def available_memory_bytes() -> int | None:
    """Memory the OS can give us now (Linux MemAvailable, else total physical memory)."""
    info = _meminfo()
    if "MemAvailable" in info:
        return info["MemAvailable"]
    return total_memory_bytes()


def total_memory_bytes() -> int | None:
    info = _meminfo()
    if "MemTotal" in info:
        return info["MemTotal"]
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


_GGML_DEVICE_GPU, _GGML_DEVICE_IGPU = 1, 2  # enum ggml_backend_dev_type


def gpu_devices() -> list[GpuDevice]:
    """GPUs as llama.cpp's own backends see them (CUDA, Metal, Vulkan, ...), with free memory.

    Asking ggml rather than nvidia-smi covers every backend llama-cpp-python can be built with,
    and reports exactly the devices llama.cpp will offload to. Empty for CPU-only builds, and
    when the library lacks these symbols."""
    try:
        from reasoncli.engine.model import load_llama_cpp

        load_llama_cpp()  # registers the backends
        from llama_cpp._ggml import libggml as g
    except Exception:
        return []
    try:
        g.ggml_backend_dev_count.restype = ctypes.c_size_t
        g.ggml_backend_dev_get.restype = ctypes.c_void_p
        g.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
            getattr(g, fn).restype = ctypes.c_char_p
            getattr(g, fn).argtypes = [ctypes.c_void_p]
        g.ggml_backend_dev_type.restype = ctypes.c_int
        g.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        g.ggml_backend_dev_memory.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_size_t),
        ]
        g.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
        g.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
        g.ggml_backend_reg_name.restype = ctypes.c_char_p
        g.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
        devices = []
        for i in range(g.ggml_backend_dev_count()):
            dev = g.ggml_backend_dev_get(i)
            if g.ggml_backend_dev_type(dev) not in (_GGML_DEVICE_GPU, _GGML_DEVICE_IGPU):
                continue
            free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
            g.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
            reg = g.ggml_backend_dev_backend_reg(dev)
            devices.append(
                GpuDevice(
                    name=(g.ggml_backend_dev_name(dev) or b"?").decode(errors="replace"),
                    description=(g.ggml_backend_dev_description(dev) or b"").decode(
                        errors="replace"
                    ),
                    backend=(g.ggml_backend_reg_name(reg) or b"GPU").decode(errors="replace"),
                    free_bytes=free.value or None,
                    total_bytes=total.value or None,
                )
            )
        return devices
    except (AttributeError, OSError, ValueError):
        return []


def detect_memory(*, gpu: bool) -> MemoryInfo:
    """RAM available now and, for GPU runs, the free memory summed over llama.cpp's GPUs (it
    splits layers across all of them by default)."""
    vram: int | None = None
    if gpu:
        frees = [d.free_bytes for d in gpu_devices() if d.free_bytes]
        vram = sum(frees) if frees else None
    return MemoryInfo(available_memory_bytes(), vram, memory_limit_from_env())
