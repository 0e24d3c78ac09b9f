from __future__ import annotations

import math

import pytest

from reasoncli.voting import GroupTally, majority_vote, top_fraction


def test_plain_majority_pools_equivalent_answers() -> None:
    result = majority_vote(["1/2", "3", "0.5", None, r"\frac{1}{2}", "3"])
    assert result.answer == "1/2"
    assert result.total == 6
    assert result.valid == 5
    assert result.share == pytest.approx(3 / 5)
    assert [(g.answer, g.count, g.members) for g in result.groups] == [
        ("1/2", 3, [0, 2, 4]),
        ("3", 2, [1, 5]),
    ]


def test_single_branch() -> None:
    result = majority_vote(["42"])
    assert (result.answer, result.share, result.total, result.valid) == ("42", 1.0, 1, 1)


def test_single_invalid_branch() -> None:
    result = majority_vote([None])
    assert (result.answer, result.share, result.total, result.valid) == (None, 0.0, 1, 0)
    assert result.groups == []


def test_all_invalid_and_empty() -> None:
    result = majority_vote([None, "", "  "])
    assert result.answer is None
    assert result.share == 0.0
    assert (result.total, result.valid) == (3, 0)
    empty = majority_vote([])
    assert (empty.answer, empty.share, empty.total, empty.valid) == (None, 0.0, 0, 0)


def test_tie_goes_to_first_appearance() -> None:
    assert majority_vote(["7", "8", "8", "7"]).answer == "7"
    assert majority_vote(["8", "7", "7", "8"]).answer == "8"


def test_invalid_branches_do_not_dilute_share() -> None:
    result = majority_vote(["5", None, None, "5", "6"])
    assert result.share == pytest.approx(2 / 3)


def test_weights_override_counts() -> None:
    result = majority_vote(["1", "1", "2"], weights=[0.1, 0.1, 0.5])
    assert result.answer == "2"
    assert result.share == pytest.approx(0.5 / 0.7)
    assert result.groups[0] == GroupTally("2", 1, 0.5, [2])
    assert result.groups[1].weight == pytest.approx(0.2)


def test_weight_tie_broken_by_count_then_first_appearance() -> None:
    by_count = majority_vote(["a", "b", "b"], weights=[1.0, 0.5, 0.5])
    assert by_count.answer == "b"
    by_order = majority_vote(["a", "b"], weights=[2.0, 2.0])
    assert by_order.answer == "a"


def test_nan_and_negative_weights_count_as_zero() -> None:
    result = majority_vote(["1", "2", "2", "3"], weights=[1.0, math.nan, -5.0, 0.5])
    assert result.answer == "1"
    assert [g.weight for g in result.groups] == [1.0, 0.5, 0.0]
    assert result.share == pytest.approx(1.0 / 1.5)


def test_all_zero_weights_still_name_a_winner_with_zero_share() -> None:
    result = majority_vote(["1", "2", "2"], weights=[0.0, 0.0, math.nan])
    assert result.answer == "2"
    assert result.share == 0.0


def test_weights_must_match_answers() -> None:
    with pytest.raises(ValueError, match="2 weights given for 3 answers"):
        majority_vote(["1", "2", "3"], weights=[1.0, 1.0])


def test_top_fraction_keeps_ceil_of_share_best_first() -> None:
    scores = [0.1, 0.9, 0.5, 0.7, 0.3]
    assert top_fraction(scores, 0.4) == [1, 3]
    assert top_fraction(scores, 0.5) == [1, 3, 2]
    assert top_fraction(scores, 1.0) == [1, 3, 2, 4, 0]


def test_top_fraction_keeps_at_least_one() -> None:
    assert top_fraction([0.2, 0.8, 0.5], 0.1) == [1]


def test_top_fraction_float_rounding_does_not_add_one() -> None:
    assert len(top_fraction([float(i) for i in range(30)], 0.1)) == 3


def test_top_fraction_nan_is_worst_and_ties_keep_index_order() -> None:
    assert top_fraction([math.nan, 1.0, 1.0, math.nan, 0.0], 1.0) == [1, 2, 4, 0, 3]
    assert top_fraction([math.nan, math.nan], 0.5) == [0]


def test_top_fraction_edge_cases() -> None:
    assert top_fraction([], 0.1) == []
    with pytest.raises(ValueError):
        top_fraction([1.0], 0.0)
    with pytest.raises(ValueError):
        top_fraction([1.0], 1.5)
