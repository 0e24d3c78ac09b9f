"""A strategy run on a worker thread, bridged to the asyncio server.

Strategies are synchronous and block in `llama_decode`, so each run gets a thread. Its events go
to an asyncio queue for streaming responses; cancelling (a client that went away, server
shutdown) makes the next event raise KeyboardInterrupt inside the strategy, which every strategy
already handles as Ctrl-C: it stops decoding, and closing its engine frees its branch slots.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from reasoncli.errors import ReasonError
from reasoncli.events import Event
from reasoncli.results import Result
from reasoncli.session import Session
from reasoncli.strategies.base import StrategyOptions, get_strategy

_DONE = object()  # queue sentinel: the run is over (result or error is set)


class Cancelled(ReasonError):
    """The run was stopped (client gone, server shutting down) before it had a result."""


class Job:
    """One strategy run: start it, follow its events, cancel it, await its result."""

    def __init__(
        self,
        strategy: str,
        question: str,
        session: Session,
        options: StrategyOptions,
        sampling: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        *,
        record: Callable[..., None] | None = None,
        forward_events: bool = True,
    ) -> None:
        self.strategy = strategy
        self.question = question
        self.session = session
        self.options = options
        if sampling:
            self.options = replace(options, sampling=replace(session.sampling, **sampling))
        self.loop = loop
        self.record = record
        # Only streams need the events; not forwarding them spares the event loop a wake-up
        # per token per branch, which competes with the decoding threads for the GIL.
        self.forward_events = forward_events
        self.on_finished: Callable[[Job], None] | None = None  # called on the event loop
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.cancelled = threading.Event()
        self.finished = asyncio.Event()
        self.started = asyncio.Event()  # set at the first event, or when the run ends
        self._emitted = False
        self._interrupted = False
        self._thread = threading.Thread(target=self._work, name=f"reason-{strategy}", daemon=True)

    def start(self) -> Job:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancelled.set()

    async def wait(self) -> Result:
        await self.finished.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- worker thread ----------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        if self.cancelled.is_set() and not self._interrupted:
            self._interrupted = True  # once, like one Ctrl-C: its handler may emit more events
            raise KeyboardInterrupt  # the strategy's Ctrl-C path returns what it has
        if not self._emitted:
            self._emitted = True
            self.loop.call_soon_threadsafe(self.started.set)
        if self.forward_events:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def _work(self) -> None:
        try:
            result = get_strategy(self.strategy).run(
                self.question, self.session, self.options, self._emit
            )
            result.backend = self.session.backend_info()
            if self.cancelled.is_set():
                result.interrupted = True
            self.result = result
        except KeyboardInterrupt:
            self.error = Cancelled("the request was cancelled before the strategy had a result")
        except BaseException as exc:  # reported to the client, never lost in a thread
            self.error = exc
        finally:
            self._record()
            self.loop.call_soon_threadsafe(self._finish)

    def _record(self) -> None:
        """Keep the run in the history; a history that cannot be written must not fail it."""
        if self.record is None:
            return
        try:
            self.record(self.question, self.strategy, self.options, self.result, self.error)
        except Exception:  # noqa: S110 - the reply matters more than its log entry
            pass

    def _finish(self) -> None:
        self.events.put_nowait(_DONE)
        self.started.set()
        self.finished.set()
        if self.on_finished is not None:
            self.on_finished(self)


def is_done_marker(item: Any) -> bool:
    return item is _DONE
