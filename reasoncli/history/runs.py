"""The history's public calls: `ask`/`think` (via the CLI runner) and `reason serve` record
runs with `record_run`; `reason logs` reads and removes them with the rest.

Each call opens the file, does one thing and closes it, so a long-lived server never holds a
lock between requests and several processes can share the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reasoncli.errors import ExitCode
from reasoncli.history.record import (
    RunRecord,
    RunSummary,
    record_from_rows,
    run_rows,
    summary_from_row,
)
from reasoncli.history.store import HistoryStore, RunFilter, RunNotFound, open_store
from reasoncli.results import Result


def record_run(
    question: str,
    model: str,
    strategy: str,
    options: Any,
    result: Result | None,
    status: int | None = None,
    interrupted: bool | None = None,
    *,
    error: BaseException | str | None = None,
    source: str = "cli",
    path: Path | None = None,
) -> int:
    """Keep one run; returns its id. Raises HistoryError when the file cannot be used.

    `status` is the exit code the run ended with; by default it follows from the result
    (130 interrupted, 1 no answer, 0 answered) or from `error`'s exit code. `interrupted`
    defaults to the result's flag.
    """
    if interrupted is None:
        interrupted = bool(result is not None and result.interrupted)
    if status is None:
        status = _status(result, interrupted, error)
    run, branches, votes = run_rows(
        question=question,
        model=model,
        strategy=strategy,
        options=options,
        result=result,
        status=status,
        interrupted=interrupted,
        error=None if error is None else (str(error) or type(error).__name__),
        source=source,
    )
    with _store(path, create=True) as store:
        assert store is not None
        return store.insert_run(run, branches, votes)


def record_served_run(
    model: str,
    question: str,
    strategy: str,
    options: Any,
    result: Result | None,
    error: BaseException | None,
) -> int:
    """The `reason serve` recorder: one call per served request, after it finishes."""
    return record_run(question, model, strategy, options, result, error=error, source="serve")


def list_runs(where: RunFilter | None = None, path: Path | None = None) -> list[RunSummary]:
    """Newest first; an absent history is an empty list (and is not created)."""
    with _store(path, create=False) as store:
        if store is None:
            return []
        return [summary_from_row(row) for row in store.list_runs(where or RunFilter())]


def get_run(run_id: int, path: Path | None = None) -> RunRecord:
    """One stored run with its rebuilt `Result`; RunNotFound (exit 4) when there is none."""
    with _store(path, create=False) as store:
        if store is None:
            raise RunNotFound(f"no run {run_id}: nothing has been logged yet")
        return record_from_rows(*store.get_run(run_id))


def delete_run(run_id: int, path: Path | None = None) -> None:
    with _store(path, create=False) as store:
        if store is None:
            raise RunNotFound(f"no run {run_id}: nothing has been logged yet")
        store.delete_run(run_id)


def delete_all(path: Path | None = None) -> int:
    """Remove every run (the file stays, with its schema); returns how many went."""
    with _store(path, create=False) as store:
        return 0 if store is None else store.delete_all()


@contextlib.contextmanager
def _store(path: Path | None, *, create: bool) -> Iterator[HistoryStore | None]:
    store = open_store(path, create=create)
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def _status(result: Result | None, interrupted: bool, error: BaseException | str | None) -> int:
    if interrupted:
        return ExitCode.INTERRUPTED
    if error is not None:
        return int(getattr(error, "exit_code", ExitCode.ERROR))
    if result is None or result.answer is None:
        return ExitCode.ERROR
    return ExitCode.OK
