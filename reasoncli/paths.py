"""Where reason keeps its data: one rule for pulled models and the run history."""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """`$XDG_DATA_HOME/reason` when it is an absolute path, else `~/.local/share/reason`."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "reason"
