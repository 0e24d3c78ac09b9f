"""The engine process of `reason serve`: the model, the shared context and the strategy runs.

llama.cpp can abort or segfault (the AMX crash of issue #26 killed every process), so the HTTP
server does not load the model: it starts this process (`python -m reasoncli.serve.worker FD`)
and talks to it over a socket pair with `multiprocessing.connection` (pickled tuples; chosen
by `benchmarks/serve_ipc.py`). A crash here ends the runs in flight, not the server, which
reports them and starts a new engine (engine_proc.py).

Messages in: ("run", RunOrder), ("cancel", rid), ("stats", qid), ("stop",).
Messages out: ("ready", info), ("failed", exit_code, message), ("started", rid),
("event", rid, Event), ("done", rid, Result | None, ApiError | None, cached prompt tokens),
("stats", qid, dict).

Each run gets a thread, as strategies block in `llama_decode`; cancelling makes the run's next
event raise KeyboardInterrupt inside the strategy, which every strategy handles as Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from reasoncli.errors import ExitCode, ReasonError
from reasoncli.events import Event
from reasoncli.results import Result
from reasoncli.strategies.base import StrategyOptions

if TYPE_CHECKING:  # the HTTP process imports this module too, without loading llama.cpp
    from reasoncli.cli.runner import ModelRequest
    from reasoncli.engine.model import LlamaModel
    from reasoncli.engine.pool import SharedContext, TokenBudget
    from reasoncli.serve.errors import ApiError
    from reasoncli.serve.session import RequestSession
    from reasoncli.session import Session


# How long the engine waits for cancelled runs to return when the server stops it; less than
# the server's ENGINE_STOP_S (engine_proc.py), after which it kills this process.
STOP_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class EngineConfig:
    """What the engine process loads: the model and the shared context's shape."""

    model: ModelRequest
    max_branches: int = 16
    max_requests: int = 8
    ctx: int = 2048
    threads: int | None = None
    flash_attn: bool = True
    queue: int = 16
    queue_timeout: float = 60.0
    prompt_cache: bool = True  # keep prompt prefixes' KV for later runs (engine/prefix_cache.py)

    def open_pool(self, model: LlamaModel) -> SharedContext:
        """The shared context of this shape on `model`: the one place the server's is built
        (benchmarks/pool_inproc.py opens the same)."""
        from reasoncli.engine.pool import SharedContext

        return SharedContext(
            model,
            max_branches=self.max_branches,
            max_runs=self.max_requests,
            ctx_per_branch=self.ctx,
            n_threads=self.threads,
            flash_attn=self.flash_attn,
            max_waiting=self.queue,
            acquire_timeout_s=self.queue_timeout,
            prompt_cache=self.prompt_cache,
        )


@dataclass(frozen=True)
class RunOrder:
    """One strategy run, as the server sends it to the engine process."""

    rid: int
    strategy: str
    question: str
    options: StrategyOptions
    sampling: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)
    forward_events: bool = False  # only streams need the token events
    group: int = 0  # the request: its runs share one generated-token budget
    group_runs: int = 1
    budget_tokens: int = 32_768
    skip_thinking: bool = False  # reasoning_effort none / a thinking budget of 0


class _Run:
    """A run on its own thread; reports through `send`."""

    def __init__(self, worker: Worker, order: RunOrder) -> None:
        self.worker = worker
        self.order = order
        self.cancelled = threading.Event()
        self._emitted = False
        self._interrupted = False
        self.thread = threading.Thread(target=self._work, name=f"run-{order.rid}", daemon=True)

    def _emit(self, event: Event) -> None:
        if self.cancelled.is_set() and not self._interrupted:
            self._interrupted = True  # once, like one Ctrl-C: its handler may emit more events
            raise KeyboardInterrupt  # the strategy's Ctrl-C path returns what it has
        if not self._emitted:
            self._emitted = True
            self.worker.send(("started", self.order.rid))
        if self.order.forward_events:
            self.worker.send(("event", self.order.rid, event))

    def _work(self) -> None:
        from reasoncli import api
        from reasoncli.engine.admission import WaitCancelled
        from reasoncli.reasoning import opens_thinking, settle_reasoning
        from reasoncli.serve.errors import Cancelled, api_error

        order = self.order
        result: Result | None = None
        error: ApiError | None = None
        session: RequestSession | None = None
        try:
            session = self.worker.session_for(order, self.cancelled)
            result = api.run(
                order.question,
                session,
                order.strategy,
                order.options,
                self._emit,
                sampling=order.sampling,
            )
            settle_reasoning(
                result,
                lambda text: len(session.model.tokenize(text, add_special=False)),
                opened=not session.skip_thinking
                and opens_thinking(session.prompt_text("?"), session.think_tags),
            )
            if self.cancelled.is_set():
                result.interrupted = True
        except (KeyboardInterrupt, WaitCancelled):
            error = api_error(Cancelled("the request was cancelled before it had a result"))
        except BaseException as exc:  # reported to the client, never lost in a thread
            error = api_error(exc)
        finally:
            cached = session.prompt_tokens_cached if session is not None else 0
            self.worker.finished(self, result, error, cached)


class Worker:
    """The engine process's state: the loaded model, the shared context and the runs."""

    def __init__(self, conn: Connection, session: Session, shared: SharedContext) -> None:
        self.conn = conn
        self.session = session
        self.shared = shared
        self.runs: dict[int, _Run] = {}
        self._budgets: dict[int, tuple[TokenBudget, int]] = {}  # group -> (budget, runs left)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            try:
                self.conn.send(message)
            except (BrokenPipeError, ConnectionResetError, EOFError):
                pass  # the server is gone; the receive loop ends too

    def session_for(self, order: RunOrder, cancelled: threading.Event) -> RequestSession:
        from reasoncli.engine.pool import TokenBudget
        from reasoncli.serve.session import RequestSession

        with self._lock:
            budget, _ = self._budgets.setdefault(
                order.group, (TokenBudget(order.budget_tokens), order.group_runs)
            )
        return RequestSession.of(
            self.session,
            self.shared,
            order.history,
            budget,
            skip_thinking=order.skip_thinking,
            cancelled=cancelled,
        )

    def finished(
        self, run: _Run, result: Result | None, error: ApiError | None, cached: int = 0
    ) -> None:
        order = run.order
        with self._lock:
            self.runs.pop(order.rid, None)
            held = self._budgets.get(order.group)
            if held is not None and held[1] > 1:
                self._budgets[order.group] = (held[0], held[1] - 1)
            else:
                self._budgets.pop(order.group, None)
        try:
            self.send(("done", order.rid, result, error, cached))
        except Exception as exc:  # a result that does not pickle must still end the request
            from reasoncli.serve.errors import api_error

            self.send(("done", order.rid, None, api_error(exc), cached))

    def stats(self) -> dict[str, Any]:
        shared = self.shared
        return {
            "branch_slots_free": shared.free_branches,
            "branch_slots": shared.max_branches,
            "decode_rounds": shared.scheduler.rounds,
            "shared_rounds": shared.scheduler.shared_rounds,  # rounds with >1 request's branches
            "mixed_rounds": shared.scheduler.mixed_rounds,  # a new run's prompt beside branches
            "short_rounds": shared.scheduler.short_rounds,  # a busy run missed the round
            "round_seconds": round(shared.scheduler.round_s, 3),  # decoding and sampling
            "decode_seconds": round(shared.context.decode_s, 3),  # llama_decode alone
            "decoded_rows": shared.context.rows_decoded,  # prompt and branch tokens decoded
            **prompt_cache_stats(shared),
        }

    def serve(self) -> None:
        """Take orders until the server says stop or goes away (its end of the pipe closes)."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            op = message[0]
            if op == "run":
                order: RunOrder = message[1]
                run = _Run(self, order)
                with self._lock:
                    self.runs[order.rid] = run
                run.thread.start()
            elif op == "cancel":
                with self._lock:
                    target = self.runs.get(message[1])
                if target is not None:
                    target.cancelled.set()
            elif op == "stats":
                self.send(("stats", message[1], self.stats()))
            elif op == "stop":
                break
        self.stop()

    def stop(self) -> None:
        """Cancel what still runs and wait for it (cancelled runs return at their next step)."""
        with self._lock:
            runs = list(self.runs.values())
        for run in runs:
            run.cancelled.set()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for run in runs:
            run.thread.join(max(0.0, deadline - time.monotonic()))


def prompt_cache_stats(shared: SharedContext) -> dict[str, Any]:
    """The prompt cache's counters for /health: prompts prefilled, those that reused a cached
    prefix, and the prompt tokens reused and decoded."""
    if shared.prefixes is None:
        return {"prompt_cache": False}
    s = shared.prefixes.stats
    return {
        "prompt_cache": True,
        "prompt_cache_prompts": s.prompts,
        "prompt_cache_hits": s.hits,
        "prompt_tokens_cached": s.tokens_reused,
        "prompt_tokens_prefilled": s.tokens_decoded,
    }


def load(conn: Connection, config: EngineConfig) -> Worker | None:
    """Load the model and open the shared context; on failure tell the server why."""
    from reasoncli.cli.runner import load_local_session
    from reasoncli.strategies.base import load_builtin_strategies

    try:
        # Every strategy module now, not inside the first requests' runs: on a busy machine the
        # imports took seconds, and runs waiting on the import lock cannot be cancelled.
        load_builtin_strategies()
        session = load_local_session(config.model)
        shared = config.open_pool(session.model)
    except ReasonError as exc:
        conn.send(("failed", int(exc.exit_code), str(exc)))
        return None
    except Exception as exc:
        conn.send(("failed", int(ExitCode.MODEL), f"{type(exc).__name__}: {exc}"))
        return None
    return Worker(conn, session, shared)


def thinking_info(session: Session) -> dict[str, Any]:
    """What the server needs to shape reasoning fields: the tags, whether the template opens the
    thought itself (the trace then starts with the first token), the effort budgets."""
    from reasoncli.reasoning import opens_thinking

    tags = session.think_tags
    probe = session.prompt_text("?") if tags else ""
    return {
        "think_tags": tags,
        "opens_thinking": opens_thinking(probe, tags),
        "effort_budgets": dict(session.effort_budgets),
    }


def main(argv: list[str]) -> int:
    # Ctrl-C in a terminal, or a service manager's SIGTERM, reaches the whole process group: the
    # server decides (it cancels the runs here, answers them, then sends "stop"), not us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(argv[0]))
    try:
        config: EngineConfig = conn.recv()
    except (EOFError, OSError):
        return 0
    worker = load(conn, config)
    if worker is None:
        return 1
    worker.send(
        (
            "ready",
            {"model": worker.session.name, "pid": os.getpid(), **thinking_info(worker.session)},
        )
    )
    worker.serve()
    conn.close()
    # The process ends without freeing the model and the context, as a multiprocessing worker
    # does: a run that missed STOP_TIMEOUT_S may still be inside llama_decode (freeing under it
    # could crash), and the interpreter's teardown took seconds on a busy machine, counted
    # against the server's shutdown deadline. The OS frees it all; the history is the server's.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
