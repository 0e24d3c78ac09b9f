"""reason: spend test-time compute on a local GGUF model, in parallel or in series.

The library's API is `reasoncli.api`: `from reasoncli import api; api.ask("What is 2+3?")`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "api"]


def __getattr__(name: str) -> Any:
    """`reasoncli.api` on first use, so `import reasoncli` (and `reason --help`) stays light."""
    if name == "api":
        import importlib

        return importlib.import_module("reasoncli.api")
    raise AttributeError(f"module 'reasoncli' has no attribute {name!r}")
