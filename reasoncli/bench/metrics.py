"""Accuracy statistics: the Wilson interval, and pass@k / maj@k from subsets of one N-branch run.

As in search-and-learn, one run with N branches per question yields estimates for every k <= N
without generating again: the estimate is the expected score of a k-branch run whose branches
are a uniformly random k-subset of the N already sampled.

- pass@k (some branch right) has the closed form 1 - C(n-c, k) / C(n, k) (Chen et al. 2021).
- maj@k (the majority answer right) is averaged over k-subsets: exactly, by enumerating how many
  branches each answer group contributes, when there are at most `EXACT_LIMIT` subsets, else
  over `SAMPLES` random subsets with a fixed seed. Branches without an answer do not vote; a
  tie between t winning groups credits 1/t to each (the expected score of a random tie-break),
  and a subset where nobody answered scores 0.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import combinations

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
    labels: Sequence[int | None], correct: Sequence[bool], k: int, *, seed: int = 0
) -> float:
    """Expected majority-vote accuracy of a random k-subset of one question's branches.

    `labels[i]` is branch i's answer group (None: no answer); `correct[g]` says whether group g
    is the right answer.
    """
    n = len(labels)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    sizes = Counter(label for label in labels if label is not None)
    if not any(correct[g] for g in sizes):
        return 0.0
    if math.comb(n, k) <= EXACT_LIMIT:
        return _maj_exact(sizes, n - sum(sizes.values()), correct, k)
    return _maj_sampled(labels, correct, k, seed)


def _score(counts: dict[int, int], correct: Sequence[bool]) -> float:
    """Credit of one subset: the share of its tied winners that are right."""
    top = max(counts.values(), default=0)
    if top == 0:
        return 0.0
    winners = [g for g, count in counts.items() if count == top]
    return sum(correct[g] for g in winners) / len(winners)


def _maj_exact(sizes: Counter[int], unanswered: int, correct: Sequence[bool], k: int) -> float:
    """Enumerate how many branches each group gives a subset; weight by the ways to pick them."""
    groups = sorted(sizes)
    total = 0
    credit = 0.0
    for picks in _compositions([sizes[g] for g in groups] + [unanswered], k):
        ways = math.prod(
            math.comb(size, x)
            for size, x in zip([sizes[g] for g in groups] + [unanswered], picks, strict=True)
        )
        total += ways
        credit += ways * _score(dict(zip(groups, picks[:-1], strict=True)), correct)
    return credit / total


def _compositions(limits: list[int], k: int) -> Iterator[tuple[int, ...]]:
    """Every (x_0, ..., x_m) with 0 <= x_i <= limits[i] and sum k."""
    if not limits:
        if k == 0:
            yield ()
        return
    head, rest = limits[0], limits[1:]
    room = sum(rest)
    for x in range(max(0, k - room), min(head, k) + 1):
        for tail in _compositions(rest, k - x):
            yield (x, *tail)


def _maj_sampled(labels: Sequence[int | None], correct: Sequence[bool], k: int, seed: int) -> float:
    rng = random.Random(seed)
    indices = range(len(labels))
    credit = 0.0
    for _ in range(SAMPLES):
        chosen = Counter(labels[i] for i in rng.sample(indices, k) if labels[i] is not None)
        credit += _score(dict(chosen), correct)
    return credit / SAMPLES


def maj_at_k_brute(labels: Sequence[int | None], correct: Sequence[bool], k: int) -> float:
    """Enumerate every k-subset of branches: the definition, kept for tests."""
    subsets = list(combinations(range(len(labels)), k))
    scores = [
        _score(dict(Counter(labels[i] for i in s if labels[i] is not None)), correct)
        for s in subsets
    ]
    return sum(scores) / len(subsets)


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
