"""DeepConf trace confidence (Fu et al. 2025, arXiv 2508.15260).

Token confidence is minus the mean log-probability of the top-k candidates at a step: high when
the model is sure, low when probability is spread out. A trace's *group confidence* is the
sliding-window mean of token confidences; its lowest value flags the trace's worst stretch of
reasoning, which predicts a wrong answer better than the trace-wide mean. Online DeepConf stops
a branch as soon as its window mean falls below a threshold calibrated on warm-up traces.

NaN marks a token without usable log-probabilities and is skipped everywhere.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

__all__ = [
    "DEFAULT_TAIL",
    "DEFAULT_WINDOW",
    "SlidingWindow",
    "calibrate_threshold",
    "group_confidences",
    "lowest_group_confidence",
    "mean_confidence",
    "tail_confidence",
    "token_confidence",
]

# The paper's group window and tail length, in tokens.
DEFAULT_WINDOW = 2048
DEFAULT_TAIL = 2048


def token_confidence(top_logprobs: Sequence[float]) -> float:
    """Minus the mean of a step's top-k log-probabilities; NaN when none is finite."""
    finite = [lp for lp in top_logprobs if math.isfinite(lp)]
    return -math.fsum(finite) / len(finite) if finite else math.nan


def _finite_mean(values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return math.fsum(kept) / len(kept) if kept else math.nan


class SlidingWindow:
    """The running mean of the last `size` token confidences, updated in O(1) per token.

    `lowest` is DeepConf's lowest group confidence so far: the minimum over full windows once
    one has been seen, before that the mean of the (partial) window, since a trace shorter than
    the window is a single group.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be at least 1, got {size}")
        self.size = size
        self._values: deque[float] = deque()
        self._sum = 0.0
        self._finite = 0
        self._pushed = 0
        self._lowest_full = math.inf

    def push(self, value: float) -> float:
        """Add one token confidence and return the current window mean."""
        self._values.append(value)
        if not math.isnan(value):
            self._sum += value
            self._finite += 1
        if len(self._values) > self.size:
            old = self._values.popleft()
            if not math.isnan(old):
                self._sum -= old
                self._finite -= 1
        self._pushed += 1
        if self._pushed % self.size == 0:  # rebuild the sum now and then against float drift
            self._sum = math.fsum(v for v in self._values if not math.isnan(v))
        mean = self.mean
        if self.full and not math.isnan(mean):
            self._lowest_full = min(self._lowest_full, mean)
        return mean

    @property
    def full(self) -> bool:
        return len(self._values) == self.size

    @property
    def mean(self) -> float:
        """The mean of the non-NaN values in the window; NaN when there are none."""
        return self._sum / self._finite if self._finite else math.nan

    @property
    def lowest(self) -> float:
        """The lowest group confidence seen so far (NaN before any finite value)."""
        if self._lowest_full < math.inf:
            return self._lowest_full
        return self.mean


def group_confidences(token_confs: Sequence[float], window: int = DEFAULT_WINDOW) -> list[float]:
    """The mean of every full window of `window` tokens, or one whole-trace mean if shorter."""
    if window < 1:
        raise ValueError(f"window size must be at least 1, got {window}")
    if not token_confs:
        return []
    if len(token_confs) <= window:
        return [_finite_mean(token_confs)]
    sliding = SlidingWindow(window)
    means = [sliding.push(c) for c in token_confs]
    return means[window - 1 :]


def lowest_group_confidence(token_confs: Sequence[float], window: int = DEFAULT_WINDOW) -> float:
    """The minimum group confidence of a trace (NaN when it has no finite value)."""
    finite = [g for g in group_confidences(token_confs, window) if not math.isnan(g)]
    return min(finite) if finite else math.nan


def tail_confidence(token_confs: Sequence[float], tail: int = DEFAULT_TAIL) -> float:
    """The mean confidence of the last `tail` tokens, where the final answer is written."""
    if tail < 1:
        raise ValueError(f"tail must be at least 1 token, got {tail}")
    return _finite_mean(token_confs[-tail:])


def mean_confidence(token_confs: Sequence[float]) -> float:
    """The mean confidence over the whole trace (DeepConf's baseline "average trace confidence")."""
    return _finite_mean(token_confs)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile, the same as numpy's default method."""
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def calibrate_threshold(warmup_lowest: Sequence[float], keep_percent: float) -> float:
    """The online-DeepConf stop threshold from warm-up traces' lowest group confidences.

    It is the (100 - keep_percent)-th percentile, so that about `keep_percent`% of traces like
    the warm-up ones would survive: 10 is the aggressive "DeepConf-low", 90 "DeepConf-high".
    Non-finite values are ignored.
    """
    if not 0 < keep_percent <= 100:
        raise ValueError(f"keep_percent must be in (0, 100], got {keep_percent}")
    values = sorted(v for v in warmup_lowest if math.isfinite(v))
    if not values:
        raise ValueError("no warm-up confidences to calibrate on")
    return _percentile(values, 100 - keep_percent)
