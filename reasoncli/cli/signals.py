"""SIGTERM and SIGHUP end a run the way Ctrl-C does.

`timeout 60 reason ask ...`, a process manager or a closed terminal would otherwise kill the
process mid-frame: the cursor stays hidden, the partial vote is lost and the run is not logged.
While a run is going, each of these signals raises `Interrupted` (a `KeyboardInterrupt`, which
every strategy already turns into its partial result) in the main thread; the exit code is
128 + the signal, as a shell reports a process that the signal ended.

A second signal means "now": the cursor is shown again and the process exits at once.

A signal that lands while llama.cpp is calling back into Python (its log callback runs for
every line it logs, quiet or not, thousands while a context is created) cannot be raised
there: ctypes prints "Exception ignored" and drops it, and the run would go on as if never
interrupted. The handler sees that from the frame and sends the signal again a moment later,
once the main thread is back in code that can raise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

NATIVE_CALLBACKS = frozenset({"llama_log_callback"})
"""Python functions that llama-cpp-python runs as ctypes callbacks: an exception raised in one
is dropped by ctypes, never reaching the run."""
RESEND_AFTER_S = 0.005

__all__ = ["Interrupted", "ReaderGone", "interrupt_code", "run_signals"]

SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
SHOW_CURSOR = "\x1b[?25h"


class Interrupted(KeyboardInterrupt):
    """A signal that ends the run; `exit_code` is what the process exits with."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class ReaderGone(KeyboardInterrupt):
    """stdout's reader went away mid-run (`--jsonl | head`): stop, keep the run, exit quietly."""


_state = threading.local()


def interrupt_code(default: int = 130) -> int:
    """The exit code of the signal that interrupted the current run (SIGINT: 130)."""
    signum = getattr(_state, "signum", None)
    return default if signum is None else 128 + signum


@contextlib.contextmanager
def run_signals() -> Iterator[None]:
    """Deliver SIGINT, SIGTERM and SIGHUP to the run as `Interrupted` while inside.

    Only the main thread can own signal handlers; elsewhere (a server's worker) this does
    nothing and the caller's own cancellation applies.
    """
    _state.signum = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        if _in_native_callback(frame):
            _send_again(signum)
            return
        if _state.signum is not None:
            _exit_now(signum)
        _state.signum = signum
        raise Interrupted(signum)

    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _in_native_callback(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name in NATIVE_CALLBACKS and "llama_cpp" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _send_again(signum: int) -> None:
    """Deliver `signum` to the main thread again shortly, from a helper thread."""
    main = threading.main_thread().ident
    if main is None:
        return
    timer = threading.Timer(RESEND_AFTER_S, signal.pthread_kill, (main, signum))
    timer.daemon = True
    timer.start()


def _exit_now(signum: int) -> None:
    """The second signal: no more cleanup, but never leave the terminal without a cursor."""
    with contextlib.suppress(OSError, ValueError):
        if sys.stderr.isatty():
            os.write(sys.stderr.fileno(), SHOW_CURSOR.encode())
    os._exit(128 + signum)
