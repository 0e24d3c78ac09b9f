"""Append-only JSONL files that survive Ctrl-C: one record per line, flushed as it finishes.

A bench run may take hours, so nothing is kept only in memory. Each record is one complete
line written while SIGINT is held back (and SIGTERM and SIGHUP, which the CLI turns into the
same interruption), then flushed and fsynced; if the process dies mid-line anyway (a kill -9, a
full disk), reading ignores the unterminated last line and resuming cuts it off before
appending.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from reasoncli.errors import InputError, UsageError

__all__ = ["JsonlStore", "Records", "read_records"]


@dataclass
class Records:
    """The complete records of a file, and whether a partial last line was ignored."""

    path: Path
    items: list[dict[str, Any]] = field(default_factory=list)
    partial_tail: bool = False

    def run_header(self) -> dict[str, Any]:
        """The first 'run' line: a `reason bench` results file has one; InputError if not."""
        header = next((r for r in self.items if r.get("type") == "run"), None)
        if header is None:
            raise InputError(f"{self.path}: not a results file of `reason bench` (no 'run' line)")
        return header


def read_records(path: Path) -> Records:
    """Every complete JSON-object line; a bad complete line is an InputError naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"results file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    records = Records(path)
    lines = data.split(b"\n")
    tail = lines.pop()  # text after the last newline: empty, or an interrupted write
    records.partial_tail = bool(tail.strip())
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise InputError(f"{path}:{number}: not valid JSON: {reason}") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: expected a JSON object")
        record["_line"] = number
        records.items.append(record)
    return records


class JsonlStore:
    """An open results file that only ever grows by whole lines."""

    def __init__(self, path: Path, handle: TextIO) -> None:
        self.path = path
        self._handle = handle
        self.written = 0

    @staticmethod
    def refuse_existing(path: Path) -> None:
        """No run is ever overwritten: an existing non-empty file must be resumed instead."""
        if path.exists() and path.stat().st_size > 0:
            raise UsageError(
                f"{path} already exists: continue it with --resume {path}, or choose another --out"
            )

    @classmethod
    def create(cls, path: Path) -> JsonlStore:
        cls.refuse_existing(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path, path.open("w", encoding="utf-8"))

    @classmethod
    def reopen(cls, path: Path) -> JsonlStore:
        """Append to an existing file, first cutting off a partial last line."""
        with path.open("rb+") as raw:
            data = raw.read()
            if data and not data.endswith(b"\n"):
                raw.truncate(data.rfind(b"\n") + 1)
        return cls(path, path.open("a", encoding="utf-8"))

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with _sigint_held():
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.written += 1  # counted before a held signal is raised on leaving

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


HELD_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Delay Ctrl-C (and SIGTERM, SIGHUP) until the block ends, so a record is never half
    written; then deliver it to the handler it would have reached."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in HELD_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, left as it is
                signal.signal(s, handler)
        for signum in dict.fromkeys(received):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)  # Python's SIGINT handler raises KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)  # what it would have done: end the process
