"""Stream one chain of thought to stderr as it is written (for `reason think` on a TTY).

The trace is dim, text forced by budget forcing is highlighted, and decisions (a "Wait", a
forced answer) appear as notes, so the user can watch the budget at work. The answer itself
goes to stdout separately.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from reasoncli.events import BranchFinished, BranchText, Event, Note, RunStarted


class ThinkingStream:
    def __init__(self, console: Any) -> None:
        self.console = console
        self.started = time.perf_counter()
        self.tokens = 0
        self.budget = 0

    def __enter__(self) -> ThinkingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):  # after SIGHUP there is no terminal to write to
            self.console.print()

    def handle(self, event: Event) -> None:
        c = self.console
        if isinstance(event, RunStarted):
            self.budget = event.max_tokens
            c.print(
                f"[bold]reason think[/] · {event.model} · budget {event.max_tokens} tokens",
                style="cyan",
            )
        elif isinstance(event, BranchText):
            self.tokens = max(self.tokens, event.tokens)
            c.print(
                event.text,
                end="",
                style="bold yellow" if event.forced else "dim",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        elif isinstance(event, Note):
            c.print()
            c.print(f"[{event.topic}] {event.message}", style="magenta", markup=False)
        elif isinstance(event, BranchFinished):
            elapsed = time.perf_counter() - self.started
            rate = event.tokens / elapsed if elapsed > 0 else 0.0
            c.print()
            c.print(
                f"{event.tokens} tokens · {rate:.1f} tok/s · {elapsed:.1f}s · "
                f"answer: {event.answer if event.answer is not None else '—'}",
                style="cyan",
                markup=False,
            )
