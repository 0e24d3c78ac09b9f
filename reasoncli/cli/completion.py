"""Shell completion of `--model` and `--strategy` values, read from the two registries.

The shell runs these on every Tab, so a broken models.yaml must not print a traceback into the
prompt: any error completes nothing.
"""

from __future__ import annotations

import contextlib


def complete_model(incomplete: str) -> list[tuple[str, str]]:
    """Registry names and aliases (with the description as help) that start with `incomplete`."""
    from reasoncli.models.catalog import load_catalog

    with contextlib.suppress(Exception):
        out: list[tuple[str, str]] = []
        prefix = incomplete.casefold()
        for spec in load_catalog():
            for name in (spec.name, *spec.aliases):
                if name.casefold().startswith(prefix):
                    out.append((name, spec.description or ""))
        return out
    return []


def complete_strategy(incomplete: str) -> list[tuple[str, str]]:
    """Every registered strategy that starts with `incomplete`, with its summary."""
    return _strategies(incomplete, serial_only=False)


def complete_serial_strategy(incomplete: str) -> list[tuple[str, str]]:
    """The strategies `reason think` runs: the serial ones."""
    return _strategies(incomplete, serial_only=True)


def _strategies(incomplete: str, *, serial_only: bool) -> list[tuple[str, str]]:
    from reasoncli.strategies.base import REGISTRY, Kind, load_builtin_strategies

    with contextlib.suppress(Exception):
        load_builtin_strategies()
        return [
            (name, cls.info.summary)
            for name, cls in REGISTRY.items()
            if name.startswith(incomplete) and (not serial_only or cls.info.kind is Kind.SERIAL)
        ]
    return []
