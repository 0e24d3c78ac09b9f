from __future__ import annotations

import math

import pytest

from reasoncli.rewards import (
    BranchReward,
    accuracy_reward,
    format_reward,
    group_advantages,
    score_branch,
    stop_reward,
)

REASONED = "Half of 10 is 5, and 5 plus 2 makes 7. The answer is 7."


def test_accuracy_reward() -> None:
    assert accuracy_reward("0.5", "1/2") == 1.0
    assert accuracy_reward("1,000", "1000") == 1.0
    assert accuracy_reward("3", "4") == 0.0
    assert accuracy_reward(None, "4") == 0.0
    assert accuracy_reward("  ", "4") == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (REASONED, 1.0),
        (r"Since 2 + 2 = 4 we conclude this. $\boxed{4}$", 1.0),
        ("Step 1: add the two numbers together.\nFinal Answer: 9", 1.0),
        ("<think>2+2</think> The answer is 4", 1.0),
        ("The answer is 4.", 0.5),
        (r"\boxed{4}", 0.5),
        ("<think>  </think>The answer is 4", 0.5),
        ("I think it is 4", 0.0),
        ("Answer: 4", 0.0),  # not one of the accepted final-answer forms
        ("", 0.0),
    ],
)
def test_format_reward(text: str, expected: float) -> None:
    assert format_reward(text) == expected


@pytest.mark.parametrize(
    ("text", "finish", "expected"),
    [
        (REASONED, "stop", 1.0),
        (REASONED, "eos", 1.0),
        (REASONED, "length", 0.0),
        (REASONED + " I hope this helps!", "stop", 1.0),
        (REASONED + " Let me verify this once more by recomputing all of the steps.", "stop", 0.0),
        ("no final statement at all", "stop", 0.0),
    ],
)
def test_stop_reward(text: str, finish: str, expected: float) -> None:
    assert stop_reward(text, finish) == expected


def test_group_advantages_known_values() -> None:
    assert group_advantages([1, 0, 1, 0]) == pytest.approx([1, -1, 1, -1])
    advantages = group_advantages([1.0, 0.0, 0.0, 0.0])
    low = -1 / math.sqrt(3)
    assert advantages == pytest.approx([math.sqrt(3), low, low, low])
    assert sum(advantages) == pytest.approx(0.0)


def test_group_advantages_degenerate_groups() -> None:
    assert group_advantages([0.7, 0.7, 0.7]) == [0.0, 0.0, 0.0]
    assert group_advantages([2.0]) == [0.0]
    assert group_advantages([]) == []


def test_group_advantages_nan_counts_as_zero() -> None:
    assert group_advantages([1.0, math.nan]) == pytest.approx([1.0, -1.0])
    assert group_advantages([math.nan, 0.0]) == [0.0, 0.0]


def test_score_branch_weights() -> None:
    right = score_branch(REASONED, "7", "stop", "7")
    assert right == BranchReward(accuracy=1.0, format=1.0, stop=1.0, total=1.5)
    wrong_but_tidy = score_branch(REASONED, "7", "length", "8")
    assert wrong_but_tidy == BranchReward(accuracy=0.0, format=1.0, stop=0.0, total=0.5)
    bare_right = score_branch("so 7", "7", "stop", "7.0")
    assert bare_right == BranchReward(accuracy=1.0, format=0.0, stop=0.0, total=1.0)
    assert bare_right.total > wrong_but_tidy.total
