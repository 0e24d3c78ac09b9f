"""Grade one strategy result against the expected answer, keeping what the report needs later.

Branch answers are grouped once, by the same equivalence the votes use, and each group is
checked against the expected answer once. The record keeps the group of every branch, so the
report can recompute pass@k and maj@k for any k without math-verify or the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from reasoncli.answers import answers_equivalent, group_answers
from reasoncli.results import Result

__all__ = ["Grade", "grade"]


@dataclass(frozen=True)
class Grade:
    correct: bool
    answers: list[str | None]
    labels: list[int | None]  # answer group of each branch, None when it gave no answer
    groups: list[dict[str, Any]]  # {"answer", "count", "correct"} per group

    @property
    def group_correct(self) -> list[bool]:
        return [bool(g["correct"]) for g in self.groups]

    def to_json(self) -> dict[str, Any]:
        """Every field, as stored in a results file."""
        return asdict(self)


def grade(result: Result, expected: str) -> Grade:
    answers = [b.answer for b in result.branches]
    labels: list[int | None] = [None] * len(answers)
    groups = []
    for index, group in enumerate(group_answers(answers)):
        for member in group.members:
            labels[member] = index
        groups.append(
            {
                "answer": group.answer,
                "count": len(group.members),
                "correct": answers_equivalent(group.answer, expected),
            }
        )
    final = result.answer
    correct = final is not None and bool(final.strip()) and answers_equivalent(final, expected)
    return Grade(correct=correct, answers=answers, labels=labels, groups=groups)
