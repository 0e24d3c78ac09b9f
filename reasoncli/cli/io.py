"""The terminal contract: where text goes, and when live views are allowed.

stdout carries only the answer (or JSON/JSONL); everything for humans goes to stderr, and only
when stderr is a terminal. Tests construct a `Terminal` with their own streams instead of
patching `sys`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO, Any


class StdoutClosed(Exception):
    """The reader of stdout went away (`| head`): stop quietly, it is not an error."""


@dataclass
class Terminal:
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    @property
    def stdin_is_tty(self) -> bool:
        return _isatty(self.stdin)

    @property
    def stdout_is_tty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_is_tty(self) -> bool:
        if os.environ.get("REASON_FORCE_TTY"):
            return True
        return _isatty(self.stderr)

    def err_console(self) -> Any:
        """A Rich console on stderr; colour follows the TTY and NO_COLOR."""
        from rich.console import Console

        return Console(
            file=self.stderr,
            force_terminal=True if os.environ.get("REASON_FORCE_TTY") else None,
            no_color=bool(os.environ.get("NO_COLOR")) or None,
            highlight=False,
        )

    def out_console(self) -> Any:
        from rich.console import Console

        return Console(file=self.stdout, no_color=bool(os.environ.get("NO_COLOR")) or None)

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
