"""The slow, thorough end of answer equivalence: math-verify, in a child process with a hard time
limit (`MathVerifyWorker`). `answers.answers_equivalent` calls `equivalent()` when its cheap
checks cannot decide."""

from __future__ import annotations

import atexit
import json
import logging
import queue
import subprocess
import sys
import threading
from types import ModuleType
from typing import IO

# Seconds one math-verify comparison may take before it counts as "not equivalent".
VERIFY_TIMEOUT_S = 5.0
# Seconds the math-verify child may take to start (it imports sympy).
VERIFY_STARTUP_TIMEOUT_S = 60.0


class MathVerifyWorker:
    """math-verify in a child process, so that a runaway comparison can be killed.

    In-process time limits cannot work: math-verify's own use SIGALRM (main thread only), and
    sympy can spend minutes inside one C call (`9^{9^{9^{9}}}` expands a huge integer) where no
    signal or thread can interrupt it. The child speaks one JSON line per comparison on its
    stdin/stdout; a comparison that overruns gets the child killed and counts as not
    equivalent, and the next comparison starts a fresh child.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._broken = False  # the child could not even start: math-verify is unusable here

    def equivalent(self, a: str, b: str) -> bool:
        with self._lock:
            if self._broken or not self._ensure_started():
                return False
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(json.dumps([a, b]) + "\n")
                self._proc.stdin.flush()
                reply = self._replies.get(timeout=VERIFY_TIMEOUT_S)
            except (OSError, queue.Empty):
                reply = None
            if reply is None:
                self._stop()
                return False
            return reply.strip() == "true"

    def _ensure_started(self) -> bool:
        if self._proc is not None and self._proc.poll() is None:
            return True
        code = (
            f"import sys; sys.path[:0] = {sys.path!r}; "
            "from reasoncli.math_verify_child import serve; serve()"
        )
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
            )
        except OSError:
            self._broken = True
            return False
        self._replies = queue.Queue()
        threading.Thread(
            target=_pump_lines, args=(self._proc.stdout, self._replies), daemon=True
        ).start()
        try:
            ready = self._replies.get(timeout=VERIFY_STARTUP_TIMEOUT_S)
        except queue.Empty:
            ready = None
        if ready is None or ready.strip() != "ready":
            self._stop()
            self._broken = True
            return False
        return True

    def _stop(self) -> None:
        """Kill the child; its reader thread then sees EOF and closes stdout itself."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            if self._proc.stdin is not None:
                try:
                    self._proc.stdin.close()
                except OSError:  # a broken pipe while flushing: the child is gone anyway
                    pass
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._stop()


def _pump_lines(stream: IO[str] | None, replies: queue.Queue[str | None]) -> None:
    """Move the child's reply lines into a queue, which the parent can wait on with a timeout."""
    if stream is not None:
        try:
            for line in stream:
                replies.put(line)
        except (OSError, ValueError):  # a killed child can leave the pipe in any state
            pass
        finally:
            stream.close()
    replies.put(None)


def serve() -> None:
    """The child's loop: read `[a, b]` JSON lines, answer `true`/`false` per line."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing the libraries print may corrupt the protocol
    try:
        import math_verify
    except ImportError:
        return
    # Timeouts are disabled on purpose (the parent enforces them); the warning it logs about
    # that, and any other, goes nowhere.
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    # The first parse and verify load most of sympy: pay that under the startup timeout, not
    # under a check's, or the first check on a busy machine is graded wrong for being slow.
    try:
        _verify_both_ways(math_verify, "\\sqrt{4}", "2")
    except Exception:
        pass
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            a, b = json.loads(line)
            out.write("true\n" if _verify_both_ways(math_verify, a, b) else "false\n")
        except Exception:  # math-verify/sympy can raise nearly anything on odd input
            out.write("false\n")
        out.flush()


def _verify_both_ways(module: ModuleType, a: str, b: str) -> bool:
    """math-verify's verdict in either order (`verify(gold, pred)` is asymmetric)."""
    # Wrapped in `$` so that bare LaTeX such as `\frac{\sqrt{2}}{2}` is recognised.
    pa = module.parse(f"${a}$", parsing_timeout=None)
    pb = module.parse(f"${b}$", parsing_timeout=None)
    if not pa or not pb:
        return False
    return bool(
        module.verify(pa, pb, timeout_seconds=None) or module.verify(pb, pa, timeout_seconds=None)
    )


WORKER = MathVerifyWorker()
atexit.register(WORKER.close)


def equivalent(a: str, b: str) -> bool:
    """math-verify's verdict on `a` and `b`; False when it overruns or is not installed."""
    return WORKER.equivalent(a, b)
