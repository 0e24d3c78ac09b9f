"""The progress bar for long runs: on stderr, only on a terminal, with the ETA and running accuracy.

The accuracy shown is per grid cell ("n=4 35%"), counting results resumed from the file, so a
user sees the curve take shape while it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["NullProgress", "RichProgress"]

# At most this many cells are shown in the running-accuracy text; beyond it, only the current.
MAX_CELLS_SHOWN = 4


class NullProgress:
    """Progress for a non-TTY stderr: nothing, so logs and pipes stay clean."""

    def start(self, total: int, done: list[dict[str, Any]]) -> None:
        pass

    def advance(self, record: dict[str, Any]) -> None:
        pass

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def time_columns() -> tuple[Any, ...]:
    """Elapsed time, then the ETA: how the bench, tune and train bars all end."""
    from rich.progress import TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()


class RichProgress:
    """A Rich bar; `cell(record)` names a record's cell, `score(record)` is its 0..1 credit."""

    def __init__(
        self,
        console: Any,
        *,
        cell: Callable[[dict[str, Any]], str],
        score: Callable[[dict[str, Any]], float],
        title: str = "bench",
        label: str = "acc",
    ) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._cell, self._score, self._label, self._title = cell, score, label, title
        self._tally: dict[str, list[float]] = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            *time_columns(),
            TextColumn("{task.fields[acc]}"),
            console=console,
            transient=False,
        )
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, total: int, done: list[dict[str, Any]]) -> None:
        for record in done:
            self._count(record)
        self._task = self._progress.add_task(
            self._title, total=total, completed=len(done), acc=self._text(None)
        )

    def advance(self, record: dict[str, Any]) -> None:
        self._count(record)
        self._progress.update(
            self._task,
            advance=1,
            acc=self._text(self._cell(record)),
        )

    def _count(self, record: dict[str, Any]) -> None:
        self._tally.setdefault(self._cell(record), []).append(self._score(record))

    def _text(self, current: str | None) -> str:
        cells = list(self._tally)
        if len(cells) > MAX_CELLS_SHOWN:
            cells = [current] if current else []
        parts = [f"{c} {sum(self._tally[c]) / len(self._tally[c]):.0%}".strip() for c in cells]
        return f"{self._label} " + " · ".join(parts) if parts else ""
