"""Where reason keeps its data: one rule for pulled models and the run history."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def data_home() -> Path:
    """`$XDG_DATA_HOME/reason` when it is an absolute path, else `~/.local/share/reason`."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "reason"


def in_data_home(variable: str, name: str) -> Path:
    """`$variable` when it is set and not empty (`~` expanded), else `name` in the data home."""
    env = os.environ.get(variable)
    if env:
        return Path(env).expanduser()
    return data_home() / name


def models_dir() -> Path:
    """Where downloaded and derived models live (`$REASON_MODELS_DIR`, else the data home)."""
    return in_data_home("REASON_MODELS_DIR", "models")


def cache_home() -> Path:
    """`$XDG_CACHE_HOME/reason` when it is an absolute path, else `~/.cache/reason`: what can be
    rebuilt (the CPU probe's answer), apart from data a user would back up."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "reason"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if missing) while the block runs; on
    Windows, which has no advisory locks, the block runs unlocked."""
    with open(path, "w") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:
            pass
        yield
