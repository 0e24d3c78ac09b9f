"""Every `ask`, `think` and served run, kept in one SQLite file for `reason logs`."""

from reasoncli.history.record import RunRecord, RunSummary
from reasoncli.history.runs import (
    delete_all,
    delete_run,
    get_run,
    list_runs,
    record_run,
    record_served_run,
)
from reasoncli.history.store import (
    HistoryError,
    RunFilter,
    RunNotFound,
    default_path,
    logging_disabled,
)

__all__ = [
    "HistoryError",
    "RunFilter",
    "RunNotFound",
    "RunRecord",
    "RunSummary",
    "default_path",
    "delete_all",
    "delete_run",
    "get_run",
    "list_runs",
    "logging_disabled",
    "record_run",
    "record_served_run",
]
