"""GRPO advantages for pass@k instead of pass@1: credit each completion with the best reward
of the k-subsets of its group it belongs to.

Plain GRPO rewards each completion on its own, so a policy gains most by making its one
likeliest answer right, and sampling entropy collapses: branches agree, and voting or a
verifier has nothing to choose from. The pass@k objective (Walder & Karkhanis 2025, "Pass@K
Policy Optimization") rewards a group for its best of k samples instead. Its unbiased
REINFORCE credit for completion i is the mean of max(r_S) over the k-subsets S of the group
that contain i. For rewards sorted ascending, r_(1) <= ... <= r_(n), that is

    s_(p) = [C(p-1, k-1) r_(p) + sum_{m>p} C(m-2, k-2) r_(m)] / C(n-1, k-1)

and the mean of s over the group is the unbiased max@k estimate. The advantage then
normalizes s within the group as GRPO normalizes r. A wrong answer that shares subsets with
a right one is pushed down less than in plain GRPO, a lone right answer in a hard group
is pushed up as much: exploration keeps paying. k = 1 gives s = r, plain GRPO.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from math import comb

__all__ = ["group_advantages", "max_at_k_credit", "pass_at_k_advantages"]

STD_EPSILON = 1e-4
"""TRL's own guard against groups whose rewards are all equal."""


def max_at_k_credit(rewards: Sequence[float], k: int) -> list[float]:
    """Each completion's mean best reward over the k-subsets of `rewards` that hold it."""
    n = len(rewards)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the group size {n}, not {k}")
    if k == 1:
        return [float(r) for r in rewards]
    order = sorted(range(n), key=lambda i: rewards[i])
    ranked = [float(rewards[i]) for i in order]
    subsets_with_one = comb(n - 1, k - 1)
    credit = [0.0] * n
    above = 0.0  # sum over m > p of C(m-2, k-2) r_(m), with 1-based m, built from the top down
    for p in range(n, 0, -1):
        credit[order[p - 1]] = (comb(p - 1, k - 1) * ranked[p - 1] + above) / subsets_with_one
        above += comb(p - 2, k - 2) * ranked[p - 1] if p >= k else 0.0
    return credit


def group_advantages(values: Sequence[float]) -> list[float]:
    """GRPO's group normalization: (v - mean) / (sample std + epsilon)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return [(v - mean) / (std + STD_EPSILON) for v in values]


def pass_at_k_advantages(rewards: Sequence[float], group_size: int, k: int) -> list[float]:
    """Advantages for consecutive groups of `group_size` rewards (TRL's layout: one prompt's
    completions side by side), each group credited for its best of k."""
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    out: list[float] = []
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        out.extend(group_advantages(max_at_k_credit(group, k)))
    return out
