"""Where a written solution's steps end, for process reward models (PRMs).

A step is one non-empty line. Training labels a step by completing the solution from the end
of that line (Math-Shepherd), and a PRM scores the solution up to there, so both sides must cut
the text at the same places: this module is the one rule.
"""

from __future__ import annotations

__all__ = ["step_prefixes"]


def step_prefixes(text: str) -> list[str]:
    """The solution up to the end of each of its steps, shortest first; the last is the whole
    (stripped) text. Blank lines are not steps; text with no visible characters has none."""
    prefixes: list[str] = []
    end = 0
    for line in text.splitlines(keepends=True):
        end += len(line)
        if line.strip():
            prefixes.append(text[:end].rstrip())
    return prefixes
