"""The terminal contract: where text goes, and when live views are allowed.

stdout carries only the answer (or JSON/JSONL); everything for humans goes to stderr, and only
when stderr is a terminal.

What the CLI reads from its process (streams, their TTY-ness, variables such as NO_COLOR) is an
`Environment`, like httpie's: the real process by default, or one a test passes to
`cli.app.main(argv, env=...)` to run the CLI in-process on its own streams (tests/cli_run.py
`run_cli`). A `Terminal` made inside such a run reads that environment; tests may also construct
a `Terminal` with their own streams.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, Any


class StdoutClosed(Exception):
    """The reader of stdout went away (`| head`): stop quietly, it is not an error."""


@dataclass
class Environment:
    """The CLI's process as it sees it. TTY-ness is the streams' own `isatty()`.

    `owns_process` is False for an in-process run: `main()` then neither arms the crash watcher
    (it would point this process's faulthandler at a watcher) nor rewires file descriptor 1 on
    a closed pipe; both belong to a real `reason` process and are tested in one.
    """

    stdin: IO[str] | None = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    owns_process: bool = True

    @contextlib.contextmanager
    def bound(self) -> Iterator[Environment]:
        """Make this the environment of the commands run inside, and point `sys.std*` at its
        streams for what writes there directly (Click's help and usage errors, `typer.echo`);
        the real process's own streams are left as they are."""
        token = _current.set(self)
        saved = sys.stdin, sys.stdout, sys.stderr
        if self.stdin is not None:
            sys.stdin = self.stdin  # type: ignore[misc]
        sys.stdout, sys.stderr = self.stdout, self.stderr  # type: ignore[misc]
        try:
            yield self
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved  # type: ignore[misc]
            _current.reset(token)


_current: ContextVar[Environment | None] = ContextVar("reason_environment", default=None)


def current_environment() -> Environment:
    """The environment of the run in progress; outside one, the real process."""
    return _current.get() or Environment()


@dataclass
class Terminal:
    stdin: IO[str] | None = field(default_factory=lambda: current_environment().stdin)
    stdout: IO[str] = field(default_factory=lambda: current_environment().stdout)
    stderr: IO[str] = field(default_factory=lambda: current_environment().stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: current_environment().environ)

    @property
    def stdin_is_tty(self) -> bool:
        return _isatty(self.stdin)

    @property
    def stdout_is_tty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_is_tty(self) -> bool:
        if self.environ.get("REASON_FORCE_TTY"):
            return True
        return _isatty(self.stderr)

    def err_console(self) -> Any:
        """A Rich console on stderr; colour follows the TTY and NO_COLOR."""
        from rich.console import Console

        return Console(
            file=self.stderr,
            force_terminal=True if self.environ.get("REASON_FORCE_TTY") else None,
            no_color=bool(self.environ.get("NO_COLOR")) or None,
            highlight=False,
            _environ=self.environ,  # COLUMNS, TERM, FORCE_COLOR: this environment's
        )

    def out_console(self) -> Any:
        from rich.console import Console

        return Console(
            file=self.stdout,
            no_color=bool(self.environ.get("NO_COLOR")) or None,
            _environ=self.environ,
        )

    def read_question(self, argument: str | None) -> str:
        """The question from the argument, stdin, or both (stdin first, like `llm`)."""
        from reasoncli.errors import InputError

        parts: list[str] = []
        if not self.stdin_is_tty and self.stdin is not None:
            try:
                piped = self.stdin.read()
            except (OSError, ValueError):
                piped = ""
            if piped.strip():
                parts.append(piped.strip())
        if argument and argument.strip():
            parts.append(argument.strip())
        question = "\n\n".join(parts)
        if not question:
            raise InputError("empty question: pass it as an argument or on stdin")
        return question


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
