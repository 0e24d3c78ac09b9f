"""Which of llama.cpp's extra CPU buffer types `reason` lets a model load into.

At load, llama.cpp can move quantized weights into "extra" CPU buffers: AMX tiles on Sapphire
Rapids-class Xeons, and the CPU repack (interleaved Q4_0/Q4_K/IQ4_NL rows for AVX2/AVX512, a real
batched speed-up). llama-cpp-python builds with `GGML_NATIVE`, so an AMX CPU gets the AMX path
compiled in, and on some machines its first matrix multiply dies with SIGSEGV (llama.cpp #20824:
`ldtilecfg` faults although the kernel grants the tile state). A user cannot fix that, so:

- `off` (no extra buffers), `repack` (the repack without AMX) and `on` (all, AMX included) can be
  forced with `REASON_CPU_EXTRA_BUFFERS` or `reason --cpu-extra-buffers`;
- `auto` (the default) keeps every extra buffer when the build has no AMX buffer type (the rule),
  and otherwise asks a child process to load the embedded model and decode with AMX on (the
  probe): a signal there means AMX is unsafe, and the repack is probed the same way. The answer
  is cached per machine and llama.cpp build, so the probe runs once.

The choice is applied once per process, before any model loads, by editing the CPU backend's
list of extra buffer types (a NULL-terminated array that llama.cpp reads at every model load).
That is the only switch that reaches every loader at once (`LlamaModel`, llama-cpp-python's
`Llama`, the verifier checks), and the only way to drop AMX while keeping the repack: the
`use_extra_bufts` model parameter turns both off together.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reasoncli.errors import UsageError
from reasoncli.paths import cache_home

ENV_VAR = "REASON_CPU_EXTRA_BUFFERS"
MODES = ("auto", "on", "repack", "off")
AMX = "AMX"
PROBE_TIMEOUT_S = 120


@dataclass(frozen=True)
class BufferChoice:
    """What `reason` decided and why; `reason doctor` prints it, `--json` carries it."""

    mode: str
    """"on" (every extra buffer type), "repack" (all but AMX) or "off" (none)."""
    source: str
    """"setting" (flag or environment), "rule", "probe" or "cached probe"."""
    reason: str
    available: tuple[str, ...]
    """Extra buffer types this llama.cpp build offers the CPU, e.g. ("AMX", "CPU_REPACK")."""

    @property
    def in_use(self) -> tuple[str, ...]:
        return kept_types(self.available, self.mode)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "in_use": list(self.in_use), "available": list(self.available)}


def kept_types(available: tuple[str, ...], mode: str) -> tuple[str, ...]:
    if mode == "off":
        return ()
    if mode == "repack":
        return tuple(name for name in available if name != AMX)
    return available


def requested_mode(value: str | None = None) -> str:
    """The mode asked for: `value` (a flag), else the environment, else "auto"."""
    raw = value if value is not None else os.environ.get(ENV_VAR, "")
    mode = raw.strip().lower() or "auto"
    if mode not in MODES:
        source = "--cpu-extra-buffers" if value is not None else ENV_VAR
        raise UsageError(f"{source} must be one of {', '.join(MODES)} (got {raw!r})")
    return mode


# A probe answers True when llama.cpp decoded with the mode's buffers, False when it crashed.
Probe = Callable[[str], bool]


def decide(requested: str, available: tuple[str, ...], probe: Probe) -> tuple[str, str, str]:
    """(mode, source, reason): pure, so both answers of the probe are testable anywhere."""
    if requested != "auto":
        return requested, "setting", f"set to {requested} ({ENV_VAR} or --cpu-extra-buffers)"
    if AMX not in available:
        return "on", "rule", "this llama.cpp build has no AMX buffer type; every extra buffer is on"
    if probe("on"):
        return "on", "probe", "a child process decoded with AMX on and exited cleanly"
    if probe("repack"):
        return "repack", "probe", "AMX crashed a child process; the CPU repack ran, so it stays on"
    return "off", "probe", "AMX and the CPU repack both crashed a child process"


# --------------------------------------------------------------------------------------------
# The CPU backend's list of extra buffer types
# --------------------------------------------------------------------------------------------


class ExtraBufferList:
    """The NULL-terminated `ggml_backend_buffer_type_t` array the CPU device hands llama.cpp."""

    def __init__(self) -> None:
        from llama_cpp._ggml import libggml as g

        g.ggml_backend_dev_by_type.restype = ctypes.c_void_p
        g.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
        g.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
        g.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
        g.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
        g.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        g.ggml_backend_buft_name.restype = ctypes.c_char_p
        g.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
        self._name = g.ggml_backend_buft_name
        self._array: Any = None
        device = g.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
        reg = g.ggml_backend_dev_backend_reg(device) if device else None
        address = (
            g.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts")
            if reg
            else None
        )
        if address:  # a build without a CPU device or the symbol has no list: nothing to edit
            getter = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
            self._array = getter(device)
        self.original: tuple[str, ...] = self.names()
        self._pointers = {name: self._array[i] for i, name in enumerate(self.original)}

    def names(self) -> tuple[str, ...]:
        if not self._array:
            return ()
        out, i = [], 0
        while self._array[i]:
            out.append(self._name(self._array[i]).decode())
            i += 1
        return tuple(out)

    def keep(self, names: tuple[str, ...]) -> None:
        """Rewrite the array in place to hold only `names`, in their original order."""
        if not self._array:
            return
        kept = [self._pointers[n] for n in self.original if n in names]
        for i in range(len(self.original)):
            self._array[i] = kept[i] if i < len(kept) else None


# --------------------------------------------------------------------------------------------
# The probe and its cache
# --------------------------------------------------------------------------------------------


def machine_fingerprint(lib: Any) -> str:
    """CPU model and flags, kernel, llama.cpp build: what decides whether AMX runs."""
    cpu = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        wanted = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
        cpu = "\n".join(dict.fromkeys(wanted))  # the first CPU's lines; they repeat per core
    except OSError:
        cpu = platform.processor()
    lib_dir = Path(lib.__file__).parent / "lib"
    builds = []
    for so in sorted(lib_dir.glob("libggml-cpu*")):
        st = so.stat()
        builds.append(f"{so.name}:{st.st_size}:{st.st_mtime_ns}")
    parts = [cpu, platform.release(), getattr(lib, "__version__", ""), *builds]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_path() -> Path:
    return cache_home() / "cpu-extra-buffers.json"


def read_cache(fingerprint: str) -> dict[str, bool]:
    try:
        data = json.loads(cache_path().read_text())
        entry = data.get(fingerprint, {})
        return {k: v for k, v in entry.get("probes", {}).items() if isinstance(v, bool)}
    except (OSError, ValueError, AttributeError):
        return {}


def write_cache(fingerprint: str, probes: dict[str, bool]) -> None:
    path = cache_path()
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[fingerprint] = {"probes": probes, "checked": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only means probing again next time


def probe_model() -> Path | None:
    """The embedded default model: quantized, always installed, AMX kernels cover its type."""
    try:
        from reasoncli.models.catalog import load_catalog
        from reasoncli.models.resolve import resolve_model

        return Path(resolve_model(None, load_catalog()).path)
    except Exception:
        return None


def run_probe(mode: str, model: Path | None) -> bool:
    """Load `model` and decode in a child process with `mode`'s buffers; False on a signal.

    A child that cannot start or has no model to load answers False: without evidence that
    AMX runs, it stays off."""
    if model is None:
        return False
    env = {**os.environ, ENV_VAR: mode, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reasoncli.engine.cpu_probe", str(model)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def cached_probe(fingerprint: str, model: Path | None) -> tuple[Probe, dict[str, bool]]:
    """A probe that answers from the cache and records what it had to run."""
    known = read_cache(fingerprint)
    ran: dict[str, bool] = {}

    def probe(mode: str) -> bool:
        if mode not in known:
            known[mode] = ran[mode] = run_probe(mode, model)
            write_cache(fingerprint, known)
        return known[mode]

    return probe, ran


# --------------------------------------------------------------------------------------------
# Once per process
# --------------------------------------------------------------------------------------------

_choice: BufferChoice | None = None


def apply(lib: Any) -> BufferChoice:
    """Decide (once per process) and edit the CPU's extra buffer list before any model loads."""
    global _choice
    if _choice is not None:
        return _choice
    buffers = ExtraBufferList()
    available = buffers.original
    requested = requested_mode()
    fingerprint = machine_fingerprint(lib)
    probe, ran = cached_probe(fingerprint, probe_model() if AMX in available else None)
    mode, source, reason = decide(requested, available, probe)
    if source == "probe" and not ran:
        source = "cached probe"
        reason += f" (cached in {cache_path()})"
    buffers.keep(kept_types(available, mode))
    _choice = BufferChoice(mode, source, reason, available)
    return _choice


def current() -> BufferChoice | None:
    """The choice this process made, if it has loaded llama.cpp."""
    return _choice


# The /proc/cpuinfo flags that decide llama.cpp's CPU kernels, in the order doctor prints them.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16")


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """Which of CPU_FLAGS this CPU reports (empty where /proc/cpuinfo does not exist)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in CPU_FLAGS if f in have]
    return []
