"""The run history database: where it lives, its schema and migrations, and its rows.

Plain `sqlite3` because it is in the standard library (no new dependency), one file is easy to
move (`REASON_LOGS_PATH`) or delete, and the schema is three small tables. WAL journal mode and a
busy timeout let several `reason` processes (or a `reason serve` and an `ask`) write at once
without losing rows. The schema is versioned with `PRAGMA user_version` and a list of
migrations; `PRAGMA application_id` marks the file as ours, so a foreign, newer or corrupt file is
refused with one line and never written to.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoncli.errors import ExitCode, ReasonError
from reasoncli.paths import in_data_home

APPLICATION_ID = 0x52534E4C  # "RSNL": a reason run log
BUSY_TIMEOUT_MS = 10_000
SQLITE_HEADER = b"SQLite format 3\x00"

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, their branches and their vote groups
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        source TEXT NOT NULL,
        question TEXT NOT NULL,
        model TEXT NOT NULL,
        strategy TEXT NOT NULL,
        options TEXT NOT NULL,
        status INTEGER NOT NULL,
        interrupted INTEGER NOT NULL,
        error TEXT,
        has_result INTEGER NOT NULL,
        answer TEXT,
        share REAL NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        generated_tokens INTEGER NOT NULL DEFAULT 0,
        load_s REAL NOT NULL DEFAULT 0,
        prompt_s REAL NOT NULL DEFAULT 0,
        generate_s REAL NOT NULL DEFAULT 0,
        total_s REAL NOT NULL DEFAULT 0,
        stop_reason TEXT,
        details TEXT NOT NULL DEFAULT '{}',
        backend TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_created ON runs (created_at);
    CREATE TABLE branches (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        branch_id INTEGER NOT NULL,
        parent INTEGER,
        label TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL,
        thinking TEXT,
        answer TEXT,
        tokens INTEGER NOT NULL,
        forced_tokens INTEGER NOT NULL DEFAULT 0,
        finish_reason TEXT NOT NULL,
        confidence REAL,
        score REAL,
        reward TEXT,
        error TEXT,
        PRIMARY KEY (run_id, position)
    );
    CREATE TABLE votes (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        answer TEXT NOT NULL,
        count INTEGER NOT NULL,
        weight REAL NOT NULL,
        members TEXT NOT NULL,
        PRIMARY KEY (run_id, position)
    );
    """,
    # 2: the engine's prefill-sharing counters (timings.prompt_tokens_decoded, decode_calls)
    """
    ALTER TABLE runs ADD COLUMN prompt_tokens_decoded INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN decode_calls INTEGER NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(ReasonError):
    """The history file cannot be used: not SQLite, someone else's, newer, or damaged."""

    exit_code = ExitCode.INPUT


class RunNotFound(HistoryError):
    """No run with that id."""


def default_path() -> Path:
    """`$REASON_LOGS_PATH`, else `history.sqlite3` next to pulled models in the XDG data home."""
    return in_data_home("REASON_LOGS_PATH", "history.sqlite3")


def logging_disabled() -> bool:
    """`REASON_NO_LOG=1` (any value but empty, 0, false, no) keeps runs out of the history."""
    value = os.environ.get("REASON_NO_LOG", "").strip().lower()
    return value not in ("", "0", "false", "no")


@dataclass(frozen=True)
class RunFilter:
    limit: int = 20
    strategy: str | None = None
    model: str | None = None
    search: str | None = None


class HistoryStore:
    """One open connection to the history file. Use `open_store()`; rows are plain dicts."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    def close(self) -> None:
        self._conn.close()

    def insert_run(
        self, run: dict[str, Any], branches: list[dict[str, Any]], votes: list[dict[str, Any]]
    ) -> int:
        """Write one run and its children in a single transaction; returns the run id."""
        with self._write():
            cur = self._conn.execute(_insert_sql("runs", run), run)
            run_id = int(cur.lastrowid or 0)
            for table, rows in (("branches", branches), ("votes", votes)):
                for row in rows:
                    row = {**row, "run_id": run_id}
                    self._conn.execute(_insert_sql(table, row), row)
        return run_id

    def list_runs(self, where: RunFilter) -> list[dict[str, Any]]:
        """Newest first, with the filters ANDed; `search` matches question or answer text."""
        clauses, args = [], []
        if where.strategy:
            clauses.append("strategy = ?")
            args.append(where.strategy)
        if where.model:
            clauses.append("model = ?")
            args.append(where.model)
        if where.search:
            clauses.append("(instr(lower(question), ?) > 0 OR instr(lower(answer), ?) > 0)")
            args += [where.search.lower()] * 2
        sql = "SELECT * FROM runs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id DESC LIMIT ?"
        return self._query(sql, [*args, where.limit])

    def get_run(self, run_id: int) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict]]:
        """(run, branches, votes) for `run_id`; RunNotFound when there is none."""
        runs = self._query("SELECT * FROM runs WHERE id = ?", [run_id])
        if not runs:
            raise RunNotFound(f"no run {run_id} in {self.path}; see `reason logs list`")
        order = "WHERE run_id = ? ORDER BY position"
        branches = self._query(f"SELECT * FROM branches {order}", [run_id])
        votes = self._query(f"SELECT * FROM votes {order}", [run_id])
        return runs[0], branches, votes

    def delete_run(self, run_id: int) -> None:
        with self._write():
            cur = self._conn.execute("DELETE FROM runs WHERE id = ?", [run_id])
        if cur.rowcount == 0:
            raise RunNotFound(f"no run {run_id} in {self.path}; see `reason logs list`")

    def delete_all(self) -> int:
        with self._write():
            cur = self._conn.execute("DELETE FROM runs")
        return int(cur.rowcount)

    def _query(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        try:
            return [dict(row) for row in self._conn.execute(sql, args)]
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                _rollback(self._conn)
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from None


def open_store(path: Path | None = None, *, create: bool = True) -> HistoryStore | None:
    """Open (and create or migrate) the history; None when it does not exist and not `create`.

    Every check that can refuse the file runs before anything is written to it.
    """
    path = path or default_path()
    if not path.exists():
        if not create:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(f"cannot create the run history at {path}: {exc}") from None
    _check_header(path)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot open the run history {path}: {exc}") from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _check_owner(path, conn)
        _migrate(path, conn)
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise _damaged(path, exc) from None
    except BaseException:
        conn.close()
        raise
    return HistoryStore(path, conn)


def _check_header(path: Path) -> None:
    """A non-empty file that does not start like SQLite is refused before sqlite3 sees it."""
    if not path.exists():
        return
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise HistoryError(f"cannot read the run history {path}: {exc}") from None
    if head and head != SQLITE_HEADER:
        raise HistoryError(
            f"{path} is not a reason run history (not an SQLite file); "
            "move it away or set REASON_LOGS_PATH"
        )


def _check_owner(path: Path, conn: sqlite3.Connection) -> None:
    # One statement, so one snapshot: read apart, another process's creating transaction
    # could commit between the reads and make a new history look like someone else's file.
    app_id, version, tables = conn.execute(
        "SELECT (SELECT application_id FROM pragma_application_id), "
        "(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)"
    ).fetchone()
    if app_id == 0 and version == 0 and tables == 0:
        return  # a new, empty database
    if app_id != APPLICATION_ID:
        raise HistoryError(
            f"{path} is an SQLite database of something else, not a reason run history; "
            "move it away or set REASON_LOGS_PATH"
        )
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"{path} was written by a newer reason (history schema {version}, this one knows "
            f"{SCHEMA_VERSION}); upgrade reason or set REASON_LOGS_PATH"
        )


def _migrate(path: Path, conn: sqlite3.Connection) -> None:
    """Apply the missing migrations in one transaction, re-reading the version under the lock
    so two processes creating the file at once do not both run them."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    _use_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        _check_owner(path, conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL. The switch needs the file to itself and does not wait on the
    busy timeout, so while another writer creates the file it is retried until that deadline."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _insert_sql(table: str, row: dict[str, Any]) -> str:
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    return f"INSERT INTO {table} ({columns}) VALUES ({values})"


def _damaged(path: Path, exc: sqlite3.Error) -> HistoryError:
    return HistoryError(f"the run history {path} cannot be used: {exc}")
