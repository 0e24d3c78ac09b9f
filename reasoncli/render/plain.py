"""Plain progress lines for logs and dumb terminals (`--progress plain`).

One line per decision that matters (a branch ends, the vote moves, a note), never per token,
so a log of a 32-branch run stays readable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from reasoncli.events import BranchFinished, Event, Note, RunStarted, VoteUpdated

__all__ = ["PlainProgress"]


class PlainProgress:
    """Writes `[  1.2s] ...` lines to a text stream as events arrive."""

    def __init__(self, stream: IO[str], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self._clock = clock
        self._started = clock()

    def handle(self, event: Event) -> None:
        line = self.format(event)
        if line is not None:
            elapsed = self._clock() - self._started
            self.stream.write(f"[{elapsed:6.1f}s] {line}\n")
            self.stream.flush()

    def format(self, event: Event) -> str | None:
        """The line for one event, or None for events too frequent to log (tokens, starts)."""
        if isinstance(event, RunStarted):
            self._started = self._clock()
            return (
                f"{event.strategy} on {event.model}: {event.branches} branch(es) × "
                f"{event.max_tokens} tokens, prompt {event.prompt_tokens} tokens"
            )
        if isinstance(event, BranchFinished):
            answer = event.answer if event.answer is not None else "(no answer)"
            score = f", score {event.score:.3f}" if event.score is not None else ""
            return (
                f"branch #{event.branch} {event.finish_reason} after {event.tokens} tokens"
                f"{score}: {answer}"
            )
        if isinstance(event, VoteUpdated):
            groups = ", ".join(f"{g.answer}×{g.count}" for g in event.groups[:5])
            if len(event.groups) > 5:
                groups += f", +{len(event.groups) - 5} more"
            lead = (
                f"{event.answer} leads with {event.share:.0%}"
                if event.answer is not None
                else "no answer yet"
            )
            detail = f" ({groups})" if groups else ""
            return f"vote {event.finished}/{event.total} finished: {lead}{detail}"
        if isinstance(event, Note):
            return f"{event.topic}: {event.message}"
        return None
