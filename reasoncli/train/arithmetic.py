"""The built-in `--task arithmetic`: seeded, templated word problems with integer answers.

It lets a user try GRPO with no data of their own. Difficulty 1 is one addition or subtraction
with numbers to 20, 2 is one step with multiplication or division and numbers to 100, 3 is two
steps. A problem belongs to the held-out split when the hash of its text says so, so training
and held-out problems can never overlap, whatever the seeds and counts.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from reasoncli.errors import UsageError

__all__ = ["DIFFICULTIES", "HELDOUT_EVERY", "Problem", "generate", "split_of"]

Split = Literal["train", "heldout"]
DIFFICULTIES = (1, 2, 3)
HELDOUT_EVERY = 8
"""One problem text in HELDOUT_EVERY (by hash) is reserved for evaluation."""
_MAX_MISSES = 5000
"""Consecutive draws that were repeats or of the other split before giving up."""

_NAMES = ("Ava", "Ben", "Mia", "Leo", "Zoe", "Sam", "Nora", "Omar", "Ivy", "Raj", "Lena", "Tom")
_ITEMS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "cookies", "shells")

Numbers = Callable[[random.Random], tuple[int, int, int]]


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str


@dataclass(frozen=True)
class _Template:
    text: str
    """Slots: {n} name, {i} item, {a} {b} {c} numbers."""
    answer: Callable[[int, int, int], int]
    numbers: Numbers


def _pair(lo: int, hi: int) -> Numbers:
    return lambda r: (r.randint(lo, hi), r.randint(lo, hi), 0)


def _minuend(lo: int, hi: int) -> Numbers:
    """a > b, so subtractions stay positive."""

    def pick(r: random.Random) -> tuple[int, int, int]:
        a = r.randint(lo + 1, hi)
        return a, r.randint(lo, a - 1), 0

    return pick


def _division(r: random.Random) -> tuple[int, int, int]:
    b, q = r.randint(2, 10), r.randint(2, 10)
    return b * q, b, 0


def _three(lo: int, hi: int) -> Numbers:
    return lambda r: (r.randint(lo, hi), r.randint(lo, hi), r.randint(lo, hi))


def _packs_minus(r: random.Random) -> tuple[int, int, int]:
    a, b = r.randint(2, 9), r.randint(2, 9)
    return a, b, r.randint(1, a * b - 1)


def _gain_loss(r: random.Random) -> tuple[int, int, int]:
    a, b = r.randint(5, 50), r.randint(2, 30)
    return a, b, r.randint(1, a + b - 1)


_LEVELS: dict[int, tuple[_Template, ...]] = {
    1: (
        _Template(
            "{n} has {a} {i}. {n} gets {b} more {i}. How many {i} does {n} have now?",
            lambda a, b, c: a + b,
            _pair(2, 20),
        ),
        _Template(
            "{n} has {a} {i} and gives {b} of them away. How many {i} does {n} have left?",
            lambda a, b, c: a - b,
            _minuend(1, 20),
        ),
        _Template(
            "There are {a} {i} in a box and {b} {i} on the table. How many {i} are there in all?",
            lambda a, b, c: a + b,
            _pair(2, 20),
        ),
        _Template("What is {a} + {b}?", lambda a, b, c: a + b, _pair(2, 20)),
        _Template("What is {a} - {b}?", lambda a, b, c: a - b, _minuend(1, 20)),
    ),
    2: (
        _Template(
            "{n} buys {a} packs of {i} with {b} {i} in each pack. How many {i} does {n} buy?",
            lambda a, b, c: a * b,
            _pair(2, 12),
        ),
        _Template(
            "{n} shares {a} {i} equally among {b} friends. How many {i} does each friend get?",
            lambda a, b, c: a // b,
            _division,
        ),
        _Template(
            "{n} has {a} {i} and finds {b} more. How many {i} does {n} have now?",
            lambda a, b, c: a + b,
            _pair(10, 99),
        ),
        _Template(
            "{n} had {a} {i} and lost {b} of them. How many {i} are left?",
            lambda a, b, c: a - b,
            _minuend(10, 99),
        ),
        _Template("What is {a} * {b}?", lambda a, b, c: a * b, _pair(2, 12)),
    ),
    3: (
        _Template(
            "{n} buys {a} packs of {b} {i} and gives away {c} {i}. "
            "How many {i} does {n} have left?",
            lambda a, b, c: a * b - c,
            _packs_minus,
        ),
        _Template(
            "{n} has {a} {i}, finds {b} more, then loses {c}. How many {i} does {n} have now?",
            lambda a, b, c: a + b - c,
            _gain_loss,
        ),
        _Template(
            "{n} has {a} {i}. A friend gives {n} {b} bags with {c} {i} in each. "
            "How many {i} does {n} have now?",
            lambda a, b, c: a + b * c,
            _three(2, 12),
        ),
        _Template("What is {a} + {b} * {c}?", lambda a, b, c: a + b * c, _three(2, 12)),
    ),
}


def split_of(question: str, every: int = HELDOUT_EVERY) -> Split:
    """The split a problem text belongs to, decided by its hash alone: one text in `every` is
    held out."""
    digest = int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big")
    return "heldout" if digest % every == 0 else "train"


def _problem(r: random.Random, templates: tuple[_Template, ...]) -> Problem:
    template = r.choice(templates)
    a, b, c = template.numbers(r)
    text = template.text.format(n=r.choice(_NAMES), i=r.choice(_ITEMS), a=a, b=b, c=c)
    return Problem(text, str(template.answer(a, b, c)))


def generate(
    n: int, *, difficulty: int = 1, seed: int = 0, split: Split = "train"
) -> list[Problem]:
    """`n` distinct problems of one split, the same for the same arguments.

    Raises UsageError when the difficulty level has too few distinct problems for `n`.
    """
    if difficulty not in _LEVELS:
        raise UsageError(f"--difficulty must be one of {', '.join(map(str, DIFFICULTIES))}")
    # The split is mixed into the seed so the two splits do not walk the same sequence.
    rng = random.Random(f"{seed}:{difficulty}:{split}")
    seen: set[str] = set()
    out: list[Problem] = []
    misses = 0
    while len(out) < n and misses < _MAX_MISSES:
        problem = _problem(rng, _LEVELS[difficulty])
        if problem.question in seen or split_of(problem.question) != split:
            misses += 1
            continue
        misses = 0
        seen.add(problem.question)
        out.append(problem)
    if len(out) < n:
        raise UsageError(
            f"difficulty {difficulty} has only about {len(out)} distinct {split} problems; ask for "
            "fewer"
        )
    return out
