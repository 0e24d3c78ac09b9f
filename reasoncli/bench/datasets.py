"""Read benchmark data: detect the format from the first record, validate every line used.

Four layouts are accepted, one per file:

- GSM8K: `question`, `answer` whose last line is `#### N`;
- MATH: `problem`, `solution` with a `\\boxed{}` answer (or an `answer` field, as in MATH-500);
- generic: `question`, `answer`;
- multiple choice: `question`, `choices` (a list, or a dict keyed A-E), `answer` (a letter,
  a 0-based index or the text of one choice).

An optional `id` names a question (else `line-N`); results are keyed by it, so it must be unique.
Every error names the file and line, because a user fixing 7,000 lines of data needs both.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from reasoncli.errors import InputError

__all__ = ["FORMATS", "SAMPLES", "Dataset", "Item", "load_dataset", "resolve_data_path"]

FORMATS = {
    "gsm8k": "GSM8K (question, answer ending in '#### N')",
    "math": "MATH (problem, solution with \\boxed{...})",
    "generic": "generic (question, answer)",
    "mc": "multiple choice (question, choices, answer)",
}
# Names `reason bench` accepts instead of a path: data shipped inside the package.
SAMPLES = {"gsm8k-sample": "gsm8k-sample.jsonl"}
LETTERS = "ABCDE"  # answer extraction reads options A-E

_GSM8K_RE = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
_LETTER_RE = re.compile(r"^\(?([A-Ea-e])\)?$")


@dataclass(frozen=True)
class Item:
    """One question as the model sees it, with the answer it is graded against."""

    id: str
    line: int
    question: str
    expected: str
    multiple_choice: bool = False

    @property
    def digest(self) -> str:
        """A short hash of what is asked and expected, so a resume can spot changed data."""
        text = f"{self.question}\x00{self.expected}".encode()
        return hashlib.sha1(text).hexdigest()[:12]


@dataclass(frozen=True)
class Dataset:
    path: Path
    format: str
    items: list[Item]


class _BadRecord(Exception):
    """A problem with one record; `load_dataset` adds the file and line."""


def resolve_data_path(name: str | Path) -> Path:
    """A path to an existing file, or the shipped sample of that name."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if str(name) in SAMPLES:
        return Path(str(resources.files("reasoncli") / "data" / SAMPLES[str(name)]))
    if path.exists():
        raise InputError(f"{path}: not a file")
    shipped = ", ".join(SAMPLES)
    raise InputError(f"data file not found: {path} (shipped samples: {shipped})")


def load_dataset(name: str | Path, *, limit: int | None = None) -> Dataset:
    """Parse up to `limit` questions; raises InputError naming the line of bad data."""
    path = resolve_data_path(name)
    fmt: str | None = None
    first_line = 0
    items: list[Item] = []
    seen: dict[str, int] = {}
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if limit is not None and len(items) >= limit:
                break
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            record = _parse_json(raw, where)
            if fmt is None:
                fmt, first_line = detect_format(record), number
                if fmt is None:
                    raise InputError(
                        f"{where}: unknown data format: {_fields(record)}; {_expected()}"
                    )
            try:
                item = _PARSERS[fmt](record, number)
            except _BadRecord as exc:
                raise InputError(
                    f"{where}: {exc} (the file is {FORMATS[fmt]}, detected from line {first_line})"
                ) from None
            if item.id in seen:
                raise InputError(
                    f"{where}: duplicate id {item.id!r} (first on line {seen[item.id]})"
                )
            seen[item.id] = number
            items.append(item)
    if fmt is None:
        raise InputError(f"{path}: no questions: the file is empty")
    return Dataset(path=path, format=fmt, items=items)


def detect_format(record: dict[str, Any]) -> str | None:
    """The format a record's fields imply, or None when they fit none."""
    if "problem" in record:
        return "math"
    if "question" in record and "choices" in record:
        return "mc"
    if "question" in record and "answer" in record:
        answer = record["answer"]
        return "gsm8k" if isinstance(answer, str) and "####" in answer else "generic"
    return None


def _parse_json(raw: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def _fields(record: dict[str, Any]) -> str:
    return "fields " + ", ".join(sorted(record)) if record else "no fields"


def _expected() -> str:
    return "expected " + "; or ".join(FORMATS.values())


def _text(record: dict[str, Any], field: str) -> str:
    if field not in record:
        raise _BadRecord(f"missing field {field!r}")
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _BadRecord(f"field {field!r} must be a string, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise _BadRecord(f"field {field!r} is empty")
    return text


def _item_id(record: dict[str, Any], line: int) -> str:
    value = record.get("id", record.get("unique_id"))
    if value is None:
        return f"line-{line}"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _BadRecord(f"field 'id' must be a string or integer, got {type(value).__name__}")
    return str(value)


def _gsm8k(record: dict[str, Any], line: int) -> Item:
    question, solution = _text(record, "question"), _text(record, "answer")
    match = _GSM8K_RE.search(solution)
    if not match:
        raise _BadRecord("field 'answer' has no final '#### N' line")
    expected = match.group(1).replace(",", "").strip()
    return Item(_item_id(record, line), line, question, expected)


def _generic(record: dict[str, Any], line: int) -> Item:
    question, answer = _text(record, "question"), _text(record, "answer")
    match = _GSM8K_RE.search(answer)
    expected = match.group(1).replace(",", "").strip() if match else answer
    return Item(_item_id(record, line), line, question, expected)


def _math(record: dict[str, Any], line: int) -> Item:
    from reasoncli.answers import extract_answer

    problem = _text(record, "problem")
    if "answer" in record:
        expected = _text(record, "answer")
    else:
        solution = _text(record, "solution")
        if "\\boxed" not in solution and "\\fbox" not in solution:
            raise _BadRecord("field 'solution' has no \\boxed{...} answer")
        boxed = extract_answer(solution)
        if not boxed:
            raise _BadRecord("field 'solution' has an empty or unclosed \\boxed{...}")
        expected = boxed
    return Item(_item_id(record, line), line, problem, expected)


def _multiple_choice(record: dict[str, Any], line: int) -> Item:
    question = _text(record, "question")
    options = _choices(record.get("choices"))
    answer = record.get("answer")
    if answer is None:
        raise _BadRecord("missing field 'answer'")
    letter = _answer_letter(answer, options)
    lines = [question, ""] + [f"{LETTERS[i]}) {text}" for i, text in enumerate(options)]
    lines += ["", "Answer with the letter of the correct option."]
    return Item(_item_id(record, line), line, "\n".join(lines), letter, multiple_choice=True)


def _choices(value: Any) -> list[str]:
    if isinstance(value, dict):
        keys = [str(k).strip().upper() for k in value]
        if keys != list(LETTERS[: len(keys)]):
            raise _BadRecord("field 'choices' as an object must be keyed A, B, C... in order")
        value = list(value.values())
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise _BadRecord("field 'choices' must be a list of strings or an object keyed A-E")
    if not 2 <= len(value) <= len(LETTERS):
        raise _BadRecord(f"field 'choices' must have 2 to {len(LETTERS)} options, not {len(value)}")
    return [str(v).strip() for v in value]


def _answer_letter(answer: Any, options: list[str]) -> str:
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(options):
            return LETTERS[answer]
        raise _BadRecord(f"field 'answer' index {answer} is outside the {len(options)} choices")
    if isinstance(answer, str):
        match = _LETTER_RE.match(answer.strip())
        if match and LETTERS.index(match.group(1).upper()) < len(options):
            return match.group(1).upper()
        if answer.strip() in options:
            return LETTERS[options.index(answer.strip())]
    raise _BadRecord(
        f"field 'answer' must be a letter A-{LETTERS[len(options) - 1]}, a 0-based index "
        "or the text of one choice"
    )


_PARSERS: dict[str, Callable[[dict[str, Any], int], Item]] = {
    "gsm8k": _gsm8k,
    "math": _math,
    "generic": _generic,
    "mc": _multiple_choice,
}
