"""The built-in `--task phrasings`: one-step word problems from a small grammar of phrasings.

The `arithmetic` task has about five sentences per difficulty, so a model trained on it learns
those sentences; issue #32 measured its lead over a bigger model vanish on new wordings. Here
each operation has many sentence shapes (the order the numbers come in, question forms, units,
numbers written as words), and whole shapes are held out: evaluation asks in sentences, and
with names and items, that training never used. Which shapes and pools are held out is fixed
in this file, not drawn from a seed, so every run and every `reason train heldout` agree.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from reasoncli.errors import UsageError

__all__ = [
    "HELDOUT_ITEMS",
    "HELDOUT_NAMES",
    "SHAPES",
    "TRAIN_ITEMS",
    "TRAIN_NAMES",
    "Phrased",
    "Shape",
    "generate",
    "number_words",
    "shape_ids",
]

Split = Literal["train", "heldout"]
OPERATIONS = ("add", "sub", "mul", "div")
WORD_SHARE = 0.25
"""Share of small numbers (up to 20) written as words."""
_MAX_MISSES = 5000

# Name and item pools are split too, and none of them is one the `arithmetic` task uses, so a
# held-out question shares no content word with anything trained on but the arithmetic.
TRAIN_NAMES = (
    "Maya", "Noah", "Priya", "Carlos", "Hana", "Felix", "Amara", "Jonas", "Lucia", "Kenji",
    "Elena", "Malik", "Sofia", "Theo", "Aisha", "Diego", "Greta", "Yusuf", "Clara", "Arjun",
    "Mrs. Lopez", "Mr. Chen", "Grandma", "the baker", "the teacher", "Coach Kim",
)  # fmt: skip
HELDOUT_NAMES = (
    "Fatima", "Oliver", "Ines", "Kwame", "Rosa", "Hugo", "Mei", "Tariq", "Elsa", "Mr. Novak",
)  # fmt: skip
TRAIN_ITEMS = (
    "oranges", "cards", "stamps", "beads", "crayons", "eggs", "balloons", "toy cars", "cupcakes",
    "buttons", "rocks", "tickets", "candles", "plates", "seeds", "postcards", "blocks", "ribbons",
)  # fmt: skip
HELDOUT_ITEMS = ("lemons", "puzzles", "feathers", "muffins", "bottles", "badges", "kites", "nuts")
_CONTAINERS = ("box", "bag", "basket", "jar", "crate", "tray")
_PLACES = ("the garden", "the shop", "the library", "the park", "the kitchen", "the school")

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(x: int) -> str:
    """0-99 in words ("forty-two"); other numbers as digits."""
    if 0 <= x < 20:
        return _ONES[x]
    if 20 <= x < 100:
        tens, ones = divmod(x, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    return str(x)


Numbers = Callable[[random.Random], tuple[int, int]]


def _add(r: random.Random) -> tuple[int, int]:
    hi = 20 if r.random() < 0.75 else 99
    return r.randint(2, hi), r.randint(2, hi)


def _sub(r: random.Random) -> tuple[int, int]:
    hi = 20 if r.random() < 0.75 else 99
    a = r.randint(3, hi)
    return a, r.randint(1, a - 1)


def _mul(r: random.Random) -> tuple[int, int]:
    return r.randint(2, 12), r.randint(2, 10)


def _div(r: random.Random) -> tuple[int, int]:
    b, q = r.randint(2, 10), r.randint(2, 10)
    return b * q, b


_NUMBERS: dict[str, Numbers] = {"add": _add, "sub": _sub, "mul": _mul, "div": _div}
_ANSWER: dict[str, Callable[[int, int], int]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a // b,
}


@dataclass(frozen=True)
class Shape:
    """One sentence shape: `body` then one of `questions`. Slots: {n} {m} names, {i} an item,
    {c} a container ({cs} its plural), {p} a place, {a} {b} the numbers (a op b is the
    answer)."""

    id: str
    op: str
    body: str
    questions: tuple[str, ...]
    heldout: bool = False


def _s(id: str, body: str, *questions: str, heldout: bool = False) -> Shape:
    return Shape(id, id.split("-")[0], body, questions, heldout)


SHAPES: tuple[Shape, ...] = (
    # addition
    _s("add-1", "{n} has {a} {i}. {m} gives {n} {b} more.",
       "How many {i} does {n} have now?", "How many {i} does {n} have in total?"),
    _s("add-2", "In the morning {n} collected {a} {i}, and in the afternoon {b} more.",
       "How many {i} did {n} collect that day?", "What is the total number of {i} collected?"),
    _s("add-3", "A {c} holds {a} {i} and a second {c} holds {b} {i}.",
       "How many {i} are in both together?", "Altogether, how many {i} are there?"),
    _s("add-4", "{n} read {a} pages on Monday and {b} pages on Tuesday.",
       "How many pages did {n} read on both days?", "How many pages is that in all?"),
    _s("add-5", "After buying {b} {i}, {n} noticed there had already been {a} at home.",
       "How many {i} does {n} have at home now?", "What is the number of {i} {n} has now?"),
    _s("add-6", "{n} walked {a} minutes to {p}, then {b} minutes further.",
       "How many minutes did {n} walk?", "For how long did {n} walk, in minutes?"),
    _s("add-7", "{a} children are in {p}. Then {b} more arrive.",
       "How many children are in {p} now?", "What is the number of children there now?",
       heldout=True),
    _s("add-8", "{n} saved ${a} last week and ${b} this week.",
       "How much money has {n} saved, in dollars?", "What are {n}'s savings now?",
       heldout=True),
    # subtraction
    _s("sub-1", "{n} had {a} {i}. {n} gave {b} of them to {m}.",
       "How many {i} does {n} have left?", "How many {i} are left with {n}?"),
    _s("sub-2", "There were {a} {i} in a {c}. {n} took out {b}.",
       "How many {i} are still in the {c}?", "How many {i} remain in the {c}?"),
    _s("sub-3", "{n} needs {a} {i} for a party but has only {b}.",
       "How many more {i} does {n} need?", "How many {i} is {n} missing?"),
    _s("sub-4", "A ribbon is {a} cm long. {n} cuts off {b} cm.",
       "How long is the ribbon now, in cm?", "How many cm of ribbon are left?"),
    _s("sub-5", "{n} used {b} of the {a} {i} on the table.",
       "How many {i} are still on the table?", "How many {i} did {n} not use?"),
    _s("sub-6", "{n} is {a} years old and {m} is {b} years old.",
       "How many years older is {n} than {m}?", "What is the difference in their ages?"),
    _s("sub-7", "A bus left {p} with {a} people. At the first stop, {b} people got off.",
       "How many people are on the bus now?", "How many people stayed on the bus?",
       heldout=True),
    _s("sub-8", "{n} had ${a} and spent ${b} on lunch.",
       "How many dollars does {n} have left?", "How much money is left?", heldout=True),
    # multiplication
    _s("mul-1", "{n} buys {a} packs of {i}. Each pack has {b} {i}.",
       "How many {i} does {n} buy?", "How many {i} is that in all?"),
    _s("mul-2", "There are {a} rows of chairs in {p}, with {b} chairs in each row.",
       "How many chairs are there?", "What is the total number of chairs?"),
    _s("mul-3", "Each {c} holds {b} {i}. {n} fills {a} of them.",
       "How many {i} did {n} put in?", "How many {i} are in the {cs} altogether?"),
    _s("mul-4", "{n} practises the piano for {b} minutes a day, for {a} days.",
       "How many minutes does {n} practise in all?", "What is the total practice time in minutes?"),
    _s("mul-5", "A ticket costs ${b}. {n} buys {a} tickets.",
       "How much does {n} pay, in dollars?", "What do the tickets cost in total?"),
    _s("mul-6", "{a} friends each bring {b} {i} to {p}.",
       "How many {i} do they bring together?", "How many {i} are brought in all?"),
    _s("mul-7", "Each table in {p} has {b} legs, and there are {a} tables.",
       "How many table legs are there in {p}?", "Count the legs: how many are there?",
       heldout=True),
    _s("mul-8", "{n} earns ${b} an hour and works {a} hours.",
       "How much does {n} earn, in dollars?", "What is {n}'s pay for the work?", heldout=True),
    # division
    _s("div-1", "{n} shares {a} {i} equally among {b} friends.",
       "How many {i} does each friend get?", "How many {i} does one friend receive?"),
    _s("div-2", "{a} {i} are packed into {cs}, {b} in each {c}.",
       "How many {cs} are filled?", "How many {cs} are needed?"),
    _s("div-3", "{n} has {a} {i} to put into {b} equal groups.",
       "How many {i} go in each group?", "What is the size of each group?"),
    _s("div-4", "A {a} cm string is cut into {b} equal pieces.",
       "How long is each piece, in cm?", "What is the length of one piece in cm?"),
    _s("div-5", "{b} children split ${a} evenly.",
       "How many dollars does each child get?", "What is each child's share in dollars?"),
    _s("div-6", "{n} reads {a} pages in {b} days, the same number each day.",
       "How many pages does {n} read per day?", "How many pages a day is that?"),
    _s("div-7", "{a} students in {p} form teams of {b}.",
       "How many teams are there?", "How many teams can they make?", heldout=True),
    _s("div-8", "{n} paid ${a} for {b} {i} that all cost the same.",
       "What did one of the {i} cost, in dollars?", "How many dollars is each one?",
       heldout=True),
)  # fmt: skip


def shape_ids(split: Split) -> list[str]:
    """The ids of the shapes one split uses."""
    return [s.id for s in SHAPES if s.heldout == (split == "heldout")]


@dataclass(frozen=True)
class Phrased:
    question: str
    answer: str
    shape: str
    """The id of the sentence shape it came from (recorded in a run)."""


def _number(x: int, r: random.Random) -> str:
    return number_words(x) if x <= 20 and r.random() < WORD_SHARE else str(x)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _render(
    shape: Shape, r: random.Random, names: tuple[str, ...], items: tuple[str, ...]
) -> tuple[str, str]:
    a, b = _NUMBERS[shape.op](r)
    words = "$" not in shape.body  # "$seven" is no way to write money
    n, m = r.sample(names, 2)
    item = r.choice(items)
    container = r.choice(_CONTAINERS)
    slots = {
        "n": n,
        "m": m,
        "i": item,
        "c": container,
        "cs": container + ("es" if container.endswith("x") else "s"),
        "p": r.choice(_PLACES),
        "a": _number(a, r) if words else str(a),
        "b": _number(b, r) if words else str(b),
    }
    body = ". ".join(_capital(s) for s in shape.body.format(**slots).split(". "))
    question = _capital(r.choice(shape.questions).format(**slots))
    return f"{body} {question}", str(_ANSWER[shape.op](a, b))


def generate(n: int, *, seed: int = 0, split: Split = "train") -> list[Phrased]:
    """`n` distinct problems from one split's shapes, names and items, the same for the same
    arguments. Shapes are drawn in turn (a shuffled cycle), so every shape is used about equally.

    Raises UsageError when the split has too few distinct problems for `n`.
    """
    shapes = [s for s in SHAPES if s.heldout == (split == "heldout")]
    names, items = (
        (HELDOUT_NAMES, HELDOUT_ITEMS) if split == "heldout" else (TRAIN_NAMES, TRAIN_ITEMS)
    )
    rng = random.Random(f"phrasings:{seed}:{split}")
    seen: set[str] = set()
    out: list[Phrased] = []
    order: list[Shape] = []
    misses = 0
    while len(out) < n and misses < _MAX_MISSES:
        if not order:
            order = rng.sample(shapes, len(shapes))
        shape = order.pop()
        question, answer = _render(shape, rng, names, items)
        if question in seen:
            misses += 1
            continue
        misses = 0
        seen.add(question)
        out.append(Phrased(question, answer, shape.id))
    if len(out) < n:
        raise UsageError(f"the {split} phrasings have only about {len(out)} distinct problems")
    return out
