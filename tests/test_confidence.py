from __future__ import annotations

import math
import random

import numpy as np
import pytest

from reasoncli.confidence import (
    SlidingWindow,
    calibrate_threshold,
    group_confidences,
    lowest_group_confidence,
    mean_confidence,
    tail_confidence,
    token_confidence,
)


def test_token_confidence_is_minus_mean_logprob() -> None:
    assert token_confidence([-0.5, -1.5]) == pytest.approx(1.0)
    assert token_confidence([0.0]) == 0.0


def test_token_confidence_skips_nan_and_minus_inf() -> None:
    assert token_confidence([-1.0, math.nan, -math.inf, -3.0]) == pytest.approx(2.0)
    assert math.isnan(token_confidence([math.nan, -math.inf]))
    assert math.isnan(token_confidence([]))


def test_sharper_distribution_is_more_confident() -> None:
    sure = [math.log(0.97), math.log(0.01), math.log(0.01)]
    unsure = [math.log(0.34), math.log(0.33), math.log(0.33)]
    assert token_confidence(sure) > token_confidence(unsure)


def test_sliding_window_means() -> None:
    window = SlidingWindow(3)
    assert [window.push(x) for x in [1.0, 2.0, 3.0, 4.0, 5.0]] == [1.0, 1.5, 2.0, 3.0, 4.0]
    assert window.mean == 4.0
    assert window.full


def test_sliding_window_skips_nan() -> None:
    window = SlidingWindow(2)
    assert math.isnan(window.push(math.nan))
    assert math.isnan(window.lowest)
    assert window.push(4.0) == 4.0
    assert window.push(2.0) == 3.0
    assert window.push(math.nan) == 2.0


def test_lowest_prefers_full_windows_over_a_noisy_start() -> None:
    window = SlidingWindow(3)
    window.push(0.1)
    assert window.lowest == pytest.approx(0.1)  # a short trace is one partial group
    for x in [5.0, 5.0, 5.0, 2.0, 5.0]:
        window.push(x)
    # full windows: (0.1,5,5) (5,5,5) (5,5,2) (5,2,5); the lone 0.1 start is not a group.
    assert window.lowest == pytest.approx(10.1 / 3)


def test_sliding_window_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        SlidingWindow(0)


def test_sliding_window_matches_naive_means_over_long_runs() -> None:
    rng = random.Random(0)
    values = [rng.uniform(0, 20) for _ in range(5000)]
    window = SlidingWindow(64)
    pushed = [window.push(v) for v in values]
    assert pushed[-1] == pytest.approx(sum(values[-64:]) / 64, rel=1e-12)
    assert pushed[100] == pytest.approx(sum(values[37:101]) / 64, rel=1e-12)


def test_group_confidences_full_windows() -> None:
    assert group_confidences([1.0, 2.0, 3.0, 4.0], window=2) == [1.5, 2.5, 3.5]
    assert group_confidences([1.0, 2.0], window=5) == [1.5]
    assert group_confidences([], window=5) == []


def test_lowest_group_confidence_agrees_with_sliding_window() -> None:
    rng = random.Random(1)
    confs = [rng.uniform(0, 10) for _ in range(300)]
    window = SlidingWindow(16)
    for c in confs:
        window.push(c)
    assert lowest_group_confidence(confs, 16) == pytest.approx(window.lowest)
    assert lowest_group_confidence([3.0, 1.0, 2.0], 2) == 1.5
    assert math.isnan(lowest_group_confidence([math.nan, math.nan], 2))


def test_tail_and_mean_confidence() -> None:
    confs = [10.0, 1.0, 2.0, math.nan, 3.0]
    assert tail_confidence(confs, tail=3) == pytest.approx(2.5)
    assert mean_confidence(confs) == pytest.approx(4.0)
    assert math.isnan(mean_confidence([]))
    with pytest.raises(ValueError):
        tail_confidence(confs, tail=0)


@pytest.mark.parametrize("keep", [10.0, 50.0, 90.0, 100.0, 33.3])
def test_calibrate_threshold_matches_numpy_percentile(keep: float) -> None:
    lowest = [3.2, 1.0, 7.5, 4.4, 2.0, 9.1, 5.5]
    assert calibrate_threshold(lowest, keep) == pytest.approx(np.percentile(lowest, 100 - keep))


def test_calibrate_threshold_known_values() -> None:
    lowest = [float(i) for i in range(1, 11)]  # 1..10
    # keep the top 10% -> 90th percentile; keep 90% -> 10th percentile.
    assert calibrate_threshold(lowest, 10) == pytest.approx(9.1)
    assert calibrate_threshold(lowest, 90) == pytest.approx(1.9)
    survivors = [x for x in lowest if x >= calibrate_threshold(lowest, 10)]
    assert survivors == [10.0]


def test_calibrate_threshold_ignores_nan_and_rejects_empty() -> None:
    assert calibrate_threshold([math.nan, 2.0, 4.0], 50) == pytest.approx(3.0)
    assert calibrate_threshold([5.0], 10) == 5.0
    with pytest.raises(ValueError):
        calibrate_threshold([], 10)
    with pytest.raises(ValueError):
        calibrate_threshold([math.nan], 10)
    with pytest.raises(ValueError):
        calibrate_threshold([1.0], 0)
