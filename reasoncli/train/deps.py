"""The `train` extra: torch, transformers, TRL and datasets, checked before any work starts.

They are heavy optional dependencies; a user without them should get one line saying what to
install, not an ImportError traceback from deep inside TRL.
"""

from __future__ import annotations

import importlib
import importlib.util

from reasoncli.errors import ReasonError

__all__ = ["INSTALL_HINT", "TRAIN_MODULES", "TrainUnavailable", "check_train_deps", "import_stack"]

INSTALL_HINT = 'pip install "reasoncli[train]"'
TRAIN_MODULES = ("torch", "transformers", "datasets", "trl")


class TrainUnavailable(ReasonError):
    """`reason train` was asked for, but the train extra is not installed (or is broken)."""


def check_train_deps() -> None:
    """Cheap check (no import) that the extra is there, so bad runs fail in milliseconds."""
    for name in TRAIN_MODULES:
        if importlib.util.find_spec(name) is None:
            raise TrainUnavailable(f"training needs {name}, which is not installed: {INSTALL_HINT}")


def import_stack() -> None:
    """Import the extra for real; a broken install still ends in one line."""
    for name in TRAIN_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise TrainUnavailable(f"training needs {name} ({exc}): {INSTALL_HINT}") from None
