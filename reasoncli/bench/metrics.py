"""Accuracy statistics: the Wilson interval, and pass@k / maj@k from subsets of one N-branch run.

As in search-and-learn, one run with N branches per question yields estimates for every k <= N
without generating again: the estimate is the expected score of a k-branch run whose branches
are a uniformly random k-subset of the N already sampled.

- pass@k (some branch right) has the closed form 1 - C(n-c, k) / C(n, k) (Chen et al. 2021).
- maj@k (the majority answer right) is averaged over k-subsets: exactly, by enumerating them,
  when there are at most `EXACT_LIMIT`, else over `SAMPLES` random subsets with a fixed seed.
  Branches without an answer do not vote, and a subset where nobody answered scores 0. A tie
  goes to the answer whose branch finished first, as `reason vote` breaks it
  (`voting.majority_vote` over branches in finish order; `picks.finish_order` rebuilds that
  order from a saved run), so maj@N is the run's own vote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain, combinations

import numpy as np

__all__ = [
    "EXACT_LIMIT",
    "RESAMPLES",
    "SAMPLES",
    "Z95",
    "bootstrap_mean",
    "maj_at_k",
    "pass_at_k",
    "subset_ks",
    "wilson",
]

Z95 = 1.959963984540054  # the 97.5% normal quantile
EXACT_LIMIT = 50_000
SAMPLES = 2_000  # per question and k; averaging over questions shrinks the error further
RESAMPLES = 4_000  # bootstrap resamples of the questions
_BOOTSTRAP_BLOCK = 1_000_000  # question indices drawn at once (8 MB)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion; (0, 1) when n is 0.

    Chosen over the normal approximation because benchmark accuracies of small models sit near
    0, where `p ± z·sqrt(p(1-p)/n)` collapses to a zero-width interval.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (k <= n)."""
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be in [0, {n}], got {c}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_at_k(
    labels: Sequence[int | None],
    correct: Sequence[bool],
    k: int,
    *,
    order: Sequence[int] | None = None,
    seed: int = 0,
) -> float:
    """Expected majority-vote accuracy of a random k-subset of one question's branches.

    `labels[i]` is branch i's answer group (None: no answer); `correct[g]` says whether group g
    is the right answer; `order` lists the branches in the order they finished (default:
    branch order), which settles ties.
    """
    n = len(labels)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if not any(correct[g] for g in {label for label in labels if label is not None}):
        return 0.0
    ranked = [labels[i] for i in (range(n) if order is None else order)]
    positions = np.array([-1 if label is None else label for label in ranked], dtype=np.int64)
    right = np.array(correct, dtype=bool)
    if math.comb(n, k) <= EXACT_LIMIT:
        return float(_winner_right(positions, right, _combinations(n, k)).mean())
    rng = np.random.default_rng(seed)
    subsets = np.sort(rng.random((SAMPLES, n)).argsort(axis=1)[:, :k], axis=1)
    return float(_winner_right(positions, right, subsets).mean())


@lru_cache(maxsize=64)
def _combinations(n: int, k: int) -> np.ndarray:
    """Every k-subset of range(n) as a row of increasing positions."""
    flat = np.fromiter(chain.from_iterable(combinations(range(n), k)), dtype=np.int64)
    return flat.reshape(-1, k)


def _winner_right(labels: np.ndarray, right: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Per subset (rows of increasing positions in finish order): is its vote's winner right?

    The winner has the most branches; among equals, the one whose first branch in the subset
    comes earliest. `count * (n + 1) - first` orders groups exactly so.
    """
    n = len(labels)
    chosen = labels[subsets]
    best = np.full(len(subsets), -1, dtype=np.int64)
    won = np.zeros(len(subsets), dtype=bool)
    for group in np.unique(labels[labels >= 0]):
        mask = chosen == group
        count = mask.sum(axis=1)
        first = np.where(mask, subsets, n).min(axis=1)
        key = np.where(count > 0, count * (n + 1) - first, -1)
        better = key > best
        best = np.where(better, key, best)
        won = np.where(better, right[group], won)
    return won


def maj_at_k_brute(
    labels: Sequence[int | None],
    correct: Sequence[bool],
    k: int,
    order: Sequence[int] | None = None,
) -> float:
    """Every k-subset voted by `voting.majority_vote` in finish order: the definition, for tests."""
    from reasoncli.voting import majority_vote

    ranked = [labels[i] for i in (range(len(labels)) if order is None else order)]
    scores = []
    for subset in combinations(range(len(ranked)), k):
        vote = majority_vote([None if ranked[i] is None else f"{ranked[i]}" for i in subset])
        scores.append(vote.answer is not None and correct[int(vote.answer)])
    return sum(scores) / len(scores)


def subset_ks(n: int) -> list[int]:
    """The k reported for an n-branch run: powers of two below n, then n itself."""
    ks = []
    k = 1
    while k < n:
        ks.append(k)
        k *= 2
    return [*ks, n] if n >= 1 else []


def bootstrap_mean(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """The mean of per-question scores and its percentile 95% interval over `RESAMPLES`
    bootstrap draws of the questions.

    For pass@k and maj@k, which are means of fractional per-question scores, so no binomial
    interval applies. The draws depend only on `seed` and the number of questions, so vectors
    over the same questions see the same resamples: the interval of a difference vector
    (`after - before`) is a paired one. Draws are made in blocks to bound memory on large sets.
    """
    q = len(values)
    rng = np.random.default_rng(seed)
    block = max(1, _BOOTSTRAP_BLOCK // q)
    means = np.empty(RESAMPLES)
    for start in range(0, RESAMPLES, block):
        stop = min(RESAMPLES, start + block)
        means[start:stop] = values[rng.integers(0, q, size=(stop - start, q))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)
