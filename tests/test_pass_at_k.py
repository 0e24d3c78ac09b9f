"""The pass@k credit against its definition: brute force over every k-subset of a group."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from reasoncli.train.pass_at_k import max_at_k_credit, pass_at_k_advantages


def brute_force_credit(rewards: list[float], k: int) -> list[float]:
    subsets = list(itertools.combinations(range(len(rewards)), k))
    return [
        statistics.fmean(max(rewards[j] for j in s) for s in subsets if i in s)
        for i in range(len(rewards))
    ]


@pytest.mark.parametrize("k", range(1, 9))
def test_credit_is_the_mean_best_reward_of_the_subsets_holding_each_completion(k: int) -> None:
    rng = random.Random(k)
    for _ in range(20):
        rewards = [rng.choice([0.0, 0.25, 0.75, 1.0, 1.75]) for _ in range(8)]  # ties included
        assert max_at_k_credit(rewards, k) == pytest.approx(brute_force_credit(rewards, k))


def test_credit_mean_is_the_unbiased_max_at_k() -> None:
    rewards = [0.0, 1.75, 0.5, 0.0, 0.75, 0.0]
    k = 3
    subsets = list(itertools.combinations(rewards, k))
    expected = statistics.fmean(max(s) for s in subsets)
    assert statistics.fmean(max_at_k_credit(rewards, k)) == pytest.approx(expected)


def test_k_one_is_plain_grpo_and_k_n_gives_no_signal() -> None:
    rewards = [0.0, 1.75, 0.5, 0.0]
    assert max_at_k_credit(rewards, 1) == rewards
    assert pass_at_k_advantages(rewards, 4, 4) == [0.0] * 4  # every subset is the whole group


def test_a_lone_right_answer_keeps_its_lead_and_wrong_ones_are_pushed_down_less() -> None:
    group = [1.0] + [0.0] * 7
    plain = pass_at_k_advantages(group, 8, 1)
    pass4 = pass_at_k_advantages(group, 8, 4)
    assert pass4[0] > 0 and pass4[0] == pytest.approx(max(pass4))
    assert all(p4 > p1 for p4, p1 in zip(pass4[1:], plain[1:], strict=True))
    assert sum(pass4) == pytest.approx(0.0, abs=1e-9)


def test_groups_are_normalized_separately_and_bad_shapes_refused() -> None:
    two = pass_at_k_advantages([0.0, 1.0, 0.0, 1.0] + [5.0] * 4, 4, 2)
    assert two[4:] == [0.0] * 4 and two[1] > 0 > two[0]
    with pytest.raises(ValueError, match="groups of 3"):
        pass_at_k_advantages([0.0] * 4, 3, 2)
    with pytest.raises(ValueError, match="between 1 and the group size"):
        max_at_k_credit([0.0, 1.0], 3)
