"""What a pull tells its user: the library reports, the CLI renders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol


class PullReporter(Protocol):
    """What a pull tells its user; the CLI renders it, library callers may ignore it."""

    def status(self, message: str) -> None:
        """A step worth a line: resolving, resuming, verifying, registering."""

    def download_started(self, description: str, total: int | None, done: int) -> None:
        """Bytes start flowing; `done` bytes were already on disk (a resumed download)."""

    def downloaded(self, n_bytes: int) -> None:
        """`n_bytes` more arrived (negative when the server ignored a Range request)."""

    def download_finished(self) -> None:
        """The transfer ended, successfully or not."""


class SilentReporter:
    """Says nothing: library use and `--json`."""

    def status(self, message: str) -> None:
        pass

    def download_started(self, description: str, total: int | None, done: int) -> None:
        pass

    def downloaded(self, n_bytes: int) -> None:
        pass

    def download_finished(self) -> None:
        pass


@contextlib.contextmanager
def hub_log_to(reporter: PullReporter) -> Iterator[None]:
    """Route huggingface_hub's warnings (retries, resumes) to `reporter` for the duration of a
    pull, instead of its own stderr handler: the CLI promises one `Error:` line on failure,
    and `--quiet` means quiet."""
    import logging

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reporter.status(record.getMessage().splitlines()[0])

    hub_logger = logging.getLogger("huggingface_hub")
    saved = (hub_logger.handlers[:], hub_logger.propagate, hub_logger.level)
    hub_logger.handlers = [_Forward(logging.WARNING)]
    hub_logger.propagate = False
    hub_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        hub_logger.handlers, hub_logger.propagate = saved[0], saved[1]
        hub_logger.setLevel(saved[2])


def bar_class(reporter: PullReporter) -> type:
    """A tqdm stand-in for huggingface_hub's `http_get`, forwarding to `reporter`."""

    class _Bar:
        def __init__(
            self, *_: Any, total: int | None = None, initial: int = 0, desc: str = "", **__: Any
        ) -> None:
            reporter.download_started(desc, total, initial)

        def update(self, n: int = 1) -> None:
            reporter.downloaded(n)

        def close(self) -> None:
            pass

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            reporter.download_finished()

    return _Bar
