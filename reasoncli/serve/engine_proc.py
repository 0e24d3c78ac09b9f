"""The server's side of the engine process: start it, send it runs, and survive its death.

`EngineProcess` spawns `reasoncli.serve.worker` with one end of a socket pair and follows it
from a reader thread. Each run is a `Job` here, with asyncio events and an event queue that the
reader thread fills. When the process dies, whatever the signal, every job in it ends with an
`EngineDied` error (HTTP 503 naming the cause; a stream gets an error event then [DONE]), the
history records them as failed, and a new engine process is started; requests that arrive
meanwhile wait for it like for branch slots (up to --queue-timeout).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from reasoncli.errors import ModelError, ReasonError
from reasoncli.events import Event
from reasoncli.results import Result
from reasoncli.serve.errors import ApiError, EngineDied, ShuttingDown, api_error
from reasoncli.serve.worker import EngineConfig, RunOrder

# A child that dies this soon after it said ready is restarted after a growing pause, so a model
# that crashes at once does not spin the CPU.
QUICK_DEATH_S = 10.0
MAX_BACKOFF_S = 30.0
STATS_TIMEOUT_S = 2.0
# At SIGTERM or Ctrl-C every run is cancelled and returns what it has at its next step; one that
# has not come back within SHUTDOWN_GRACE_S ends here with a 503, so that every request is
# answered before uvicorn's own graceful deadline (10 s in cli/serve.py), after which uvicorn
# cancels the request's task and answers it with a bare 500. The engine process then gets
# ENGINE_STOP_S to exit before it is killed: the shutdown takes SHUTDOWN_GRACE_S +
# ENGINE_STOP_S at most, plus the time the answers take to send and the interpreter to exit.
SHUTDOWN_GRACE_S = 5.0
ENGINE_STOP_S = 5.0
_DONE = object()  # queue sentinel: the run is over (result or error is set)


class RunRecorder(Protocol):
    """Called once per finished run: the history (`reason logs`)."""

    def __call__(
        self,
        question: str,
        strategy: str,
        options: Any,
        result: Result | None,
        error: BaseException | None,
    ) -> None: ...


class Job:
    """One run in the engine process, seen from the event loop: events, result, cancel."""

    def __init__(self, engine: EngineProcess, order: RunOrder) -> None:
        self.engine = engine
        self.order = order
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.started = asyncio.Event()  # set at the first event, or when the run ends
        self.finished = asyncio.Event()
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.cached_tokens = 0  # its prompt tokens the engine's prompt cache did not decode
        self.on_finished: Callable[[Job], None] | None = None

    def cancel(self) -> None:
        if not self.finished.is_set():
            self.engine.cancel(self.order.rid)

    async def wait(self) -> Result:
        await self.finished.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def _finish(self) -> None:  # on the event loop
        if self.finished.is_set():
            return
        self.events.put_nowait(_DONE)
        self.started.set()
        self.finished.set()
        if self.on_finished is not None:
            self.on_finished(self)


def is_done_marker(item: Any) -> bool:
    return item is _DONE


@dataclass
class EngineState:
    """What /health says about the engine process."""

    pid: int | None = None
    state: str = "starting"  # starting | ready | restarting | stopped
    restarts: int = 0
    last_exit: str | None = None  # how the previous engine process ended


class EngineProcess:
    """Starts, feeds and restarts the engine process."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        record: RunRecorder | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.record = record
        self.note = note or (lambda _line: None)
        self.info = EngineState()
        self.model_name = ""
        self.thinking: dict[str, Any] = {}  # worker.thinking_info: tags, opens, effort budgets
        self.loop: asyncio.AbstractEventLoop | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._jobs: dict[int, Job] = {}
        self._stats: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # the jobs table, the connection and readiness
        self._send_lock = threading.Lock()  # one message at a time on the pipe
        self._ready = threading.Event()
        self._closing = False
        self._draining = False  # SIGTERM / Ctrl-C: new runs are refused
        self._reader: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the first engine process and wait until its model is loaded.

        Raises the ReasonError the engine reported (exit code included), so `reason serve`
        fails as `reason ask` would on the same model.
        """
        self._spawn()
        self._reader = threading.Thread(target=self._follow, name="engine-reader", daemon=True)
        self._reader.start()

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reasoncli.serve.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        conn.send(self.config)
        try:
            message = conn.recv()
        except (EOFError, OSError):
            proc.wait()
            conn.close()
            cause = exit_cause(proc.returncode)
            raise ModelError(f"the engine process {cause} while loading the model") from None
        if message[0] == "failed":
            proc.wait()
            conn.close()
            error = ReasonError(message[2])
            error.exit_code = message[1]  # type: ignore[misc]
            raise error
        self.model_name = message[1]["model"]
        self.thinking = {
            k: message[1].get(k) for k in ("think_tags", "opens_thinking", "effort_budgets")
        }
        with self._lock:
            self._proc, self._conn = proc, conn
            self.info.pid = proc.pid
            self.info.state = "ready"
            self._ready.set()

    def _follow(self) -> None:
        """The reader thread: dispatch messages; on the process's death, fail and restart."""
        while True:
            conn, proc = self._conn, self._proc
            assert conn is not None and proc is not None
            started = time.monotonic()
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                self._dispatch(message)
            if self._closing:
                return
            cause = exit_cause(proc.wait())
            self._died(cause)
            if self._draining:  # shutting down: no new engine to load
                return
            pause = 0.0
            while not self._closing:
                if time.monotonic() - started < QUICK_DEATH_S:
                    pause = min(MAX_BACKOFF_S, max(0.5, pause * 2))
                    time.sleep(pause)
                try:
                    self._spawn()
                    break
                except ReasonError as exc:
                    self.note(f"reason serve: the engine did not start again: {exc}")
                    started = time.monotonic()
            if self._closing:  # closed while the new one loaded: stop it too
                self._stop_child()
                return
            self.info.restarts += 1
            self.note(f"reason serve: engine process restarted (pid {self.info.pid})")

    def _died(self, cause: str) -> None:
        with self._lock:
            self._ready.clear()
            self.info.state = "restarting"
            self.info.last_exit = cause
            jobs, self._jobs = list(self._jobs.values()), {}
            stats, self._stats = list(self._stats.values()), {}
            if self._conn is not None:
                self._conn.close()
        self.note(
            f"reason serve: the engine process {cause}; {len(jobs)} run(s) in it failed, "
            "starting a new one"
        )
        error = EngineDied(f"the engine process {cause} during this request; it is restarting")
        for job in jobs:
            job.error = api_error(error)
            self._record(job)
            self._call(job._finish)
        for fut in stats:
            self._call(functools.partial(_resolve, fut, {}))

    def close(self, timeout: float = ENGINE_STOP_S) -> None:
        """Stop the engine process: runs still in it are cancelled and end first."""
        self._closing = True
        self._stop_child(timeout)
        if self._reader is not None:
            self._reader.join(5)
        self._stop_child(timeout)  # one the reader thread may have started meanwhile

    def _stop_child(self, timeout: float = ENGINE_STOP_S) -> None:
        with self._lock:
            conn, proc = self._conn, self._proc
            self.info.state = "stopped"
        if conn is not None:
            self._send(conn, ("stop",))
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if conn is not None:
            conn.close()

    # -- requests -------------------------------------------------------------------------
    async def submit(self, order: RunOrder) -> Job:
        """Send a run to the engine; waits (up to --queue-timeout) while it restarts."""
        deadline = time.monotonic() + self.config.queue_timeout
        loop = self.loop = asyncio.get_running_loop()
        while True:
            if self._draining:
                raise api_error(ShuttingDown("the server is shutting down"))
            with self._lock:
                conn = self._conn if self._ready.is_set() else None
                if conn is not None:
                    rid = next(self._ids)
                    job = Job(self, _with_rid(order, rid))
                    self._jobs[rid] = job
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApiError(
                    503,
                    f"the engine process is restarting (it {self.info.last_exit})",
                    kind="server_error",
                    code="engine_restarting",
                    retry=5,
                )
            # In short waits, so that a shutdown meanwhile (no engine will come back) is seen
            # and the executor's thread does not outlive the server.
            await loop.run_in_executor(None, self._ready.wait, min(left, 0.5))
        self._send(conn, ("run", job.order))  # on the connection it was registered with
        return job

    def new_group(self) -> int:
        return next(self._ids)

    def cancel(self, rid: int) -> None:
        with self._lock:
            conn = self._conn if rid in self._jobs else None
        if conn is not None:
            self._send(conn, ("cancel", rid))

    def cancel_all(self) -> None:
        """Cancel every run and refuse new ones (Ctrl-C, SIGTERM); runs still out after
        SHUTDOWN_GRACE_S then end with a 503. Called from a signal handler on the event loop's
        thread, which may be inside a send: the sends are scheduled, not made here."""
        if self._draining:
            return
        self._draining = True
        self._call(self._cancel_all_now)

    def _cancel_all_now(self) -> None:
        with self._lock:
            conn, rids = self._conn, list(self._jobs)
        for rid in rids:
            self._send(conn, ("cancel", rid))
        if self.loop is not None:
            self.loop.call_later(SHUTDOWN_GRACE_S, self._abandon_all)

    def _abandon_all(self) -> None:
        """On the loop, at the shutdown deadline: the runs that have not returned end now with
        a 503 (recorded as failed); whatever the engine still sends for them is dropped."""
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        error = api_error(
            ShuttingDown(
                f"the server is shutting down and this run did not stop within "
                f"{SHUTDOWN_GRACE_S:g} s"
            )
        )
        for job in jobs:
            job.error = error
            self._record(job)
            job._finish()

    async def stats(self) -> dict[str, Any]:
        """The engine's batching counters; {} while it restarts or does not answer in time."""
        loop = self.loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        qid = next(self._ids)
        with self._lock:
            conn = self._conn if self._ready.is_set() else None
            if conn is None:
                return {}
            self._stats[qid] = fut
        self._send(conn, ("stats", qid))
        try:
            return await asyncio.wait_for(fut, STATS_TIMEOUT_S)
        except asyncio.TimeoutError:
            return {}
        finally:
            with self._lock:
                self._stats.pop(qid, None)

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    # -- internals ------------------------------------------------------------------------
    def _send(self, conn: Connection | None, message: tuple[Any, ...]) -> None:
        """Send without holding the jobs lock, so the reader thread never waits on a send; a dead
        pipe is noticed (and reported) by the reader thread."""
        if conn is None:
            return
        with self._send_lock:
            try:
                conn.send(message)
            except OSError:
                pass

    def _call(self, fn: Callable[[], Any]) -> None:
        if self.loop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(fn)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        op = message[0]
        if op == "stats":
            with self._lock:
                fut = self._stats.get(message[1])
            if fut is not None:
                data = message[2]
                self._call(functools.partial(_resolve, fut, data))
            return
        with self._lock:
            job = self._jobs.get(message[1])
            if op == "done":
                self._jobs.pop(message[1], None)
        if job is None:
            return
        if op == "started":
            self._call(job.started.set)
        elif op == "event":
            event: Event = message[2]
            self._call(lambda: job.events.put_nowait(event))
        elif op == "done":
            job.result, job.error = message[2], message[3]
            job.cached_tokens = message[4] if len(message) > 4 else 0
            self._record(job)
            self._call(job._finish)

    def _record(self, job: Job) -> None:
        """Keep the run in the history; a history that cannot be written must not fail it."""
        if self.record is None:
            return
        order = job.order
        try:
            self.record(order.question, order.strategy, order.options, job.result, job.error)
        except Exception:  # noqa: S110 - the reply matters more than its log entry
            pass


def _with_rid(order: RunOrder, rid: int) -> RunOrder:
    from dataclasses import replace

    return replace(order, rid=rid)


def exit_cause(returncode: int | None) -> str:
    """How a process ended, in words: "was killed by SIGSEGV", "exited with status 1"."""
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def _resolve(future: asyncio.Future[dict[str, Any]], value: dict[str, Any]) -> None:
    """Set a future's result unless it already has one (or was cancelled); on the loop."""
    if not future.done():
        future.set_result(value)
