"""Where a written solution's steps end, for process reward models (PRMs).

A step is one non-empty line. Training labels a step by completing the solution from the end
of that line (Math-Shepherd), a PRM scores the solution up to there, and step-level search
(`beam`, `dvts`) ends a step there, so every side cuts the text at the same places: this
module is the one rule. Paragraphs separated by blank lines are steps too, one per line.
"""

from __future__ import annotations

__all__ = ["ends_step", "step_prefixes"]


def ends_step(written: str) -> bool:
    """Whether text written since the last step's end finishes a step: a line break after some
    visible content. Leading line breaks are the tail of the previous step (a blank line
    between paragraphs), not a step of their own."""
    return "\n" in written.lstrip()


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
