"""Share the CPU cores between `reason` processes that decode at the same time.

ggml's OpenMP threads busy-wait at every barrier. Two processes with two threads each on two
cores then spin against each other: measured here, each ran at 22 tok/s where one alone ran at
135. `OMP_WAIT_POLICY=passive` rescues the pair but costs a lone run 40%, and OpenMP reads it
once, at load. So the thread count follows the number of processes decoding instead:

- a process that decodes touches a file named after its pid in a per-user directory, at most
  every `TOUCH_S`; a file touched within `FRESH_S` is a process decoding now;
- before a decode, a context uses `base // decoding` threads (at least one), re-counted at most
  every `TOUCH_S`, through `llama_set_n_threads`. One thread runs no OpenMP region, so two runs
  on two cores never spin against each other, and a lone run keeps every thread.

A thread count the user chose (`--threads`), `OMP_WAIT_POLICY` set in the environment, or
`REASON_SHARE_CORES=0` turns the sharing off: their setting wins.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import time
from pathlib import Path
from typing import Any

TOUCH_S = 0.25
FRESH_S = 1.0
STALE_S = 3600.0  # files of processes gone this long are removed while counting


def sharing_enabled() -> bool:
    if os.environ.get("REASON_SHARE_CORES", "").strip() in ("0", "false", "no", "off"):
        return False
    return "OMP_WAIT_POLICY" not in os.environ


def registry_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and os.path.isabs(runtime) else Path(tempfile.gettempdir())
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return base / f"reason-{uid}" / "decoding"


class DecodingRegistry:
    """This process's mark in the shared directory, and the count of everyone's fresh marks."""

    def __init__(self, directory: Path | None = None, pid: int | None = None) -> None:
        self.directory = directory or registry_dir()
        self.pid = pid or os.getpid()
        self._mine = self.directory / str(self.pid)
        self._touched = 0.0
        self._created = False

    def touch(self, now: float | None = None) -> None:
        """Mark this process as decoding (cheap: at most one utime every TOUCH_S)."""
        now = time.time() if now is None else now
        if now - self._touched < TOUCH_S:
            return
        self._touched = now
        try:
            if not self._created:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._mine.touch()
                self._created = True
                atexit.register(self.remove)
            os.utime(self._mine, (now, now))
        except OSError:
            self._created = False  # an unwritable directory: run as if alone

    def decoding(self, now: float | None = None) -> int:
        """Processes (this one included) that touched their mark within FRESH_S."""
        now = time.time() if now is None else now
        count = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return 1
        for entry in entries:
            try:
                age = now - entry.stat().st_mtime
            except OSError:
                continue
            if age <= FRESH_S:
                count += 1
            elif age > STALE_S:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
        return max(1, count)

    def remove(self) -> None:
        try:
            self._mine.unlink()
        except OSError:
            pass
        self._created = False


_registry: DecodingRegistry | None = None


def registry() -> DecodingRegistry:
    global _registry
    if _registry is None:
        _registry = DecodingRegistry()
    return _registry


def shared_threads(base: int, decoding: int) -> int:
    return max(1, base // max(1, decoding))


class ThreadShare:
    """Keeps one llama.cpp context's thread count at its share of the cores."""

    def __init__(self, base: int, base_batch: int, *, fixed: bool = False) -> None:
        self.base = base
        self.base_batch = base_batch
        self.enabled = not fixed and sharing_enabled() and base > 1
        self.current = base
        self._checked = 0.0

    def before_decode(self, lib: Any, ctx: Any) -> None:
        if not self.enabled:
            return
        now = time.time()
        reg = registry()
        reg.touch(now)
        if now - self._checked < TOUCH_S:
            return
        self._checked = now
        decoding = reg.decoding(now)
        threads = shared_threads(self.base, decoding)
        if threads != self.current:
            self.current = threads
            lib.llama_set_n_threads(ctx, threads, shared_threads(self.base_batch, decoding))
