"""Fit a policy on one part of the questions and judge it on the other.

1. Split: a question is held out when a seeded hash of its id says so (fixed, reproducible,
   independent of file order).
2. Difficulty: every estimate in `difficulty.ESTIMATES` is scored by its AUC against the
   question's true pass rate (the share of right branches after the pilot; hard = below one
   half) on the fit part; the best one that reads no verifier scores is used, unless one is
   named. The `verifier-*` ones exist when the pilot file was scored by a verifier, and are
   used only when named: a policy on one has `auto` score its pilots, and every arm pays for
   that scoring (`after_scored_pilot`), which a better AUC alone does not show is worth it.
3. Bins: quantiles of the estimate on the fit part (tied values merge bins).
4. Per budget (mean tokens per question), one strategy per bin, chosen to maximise accuracy on
   the fit part with the bins' mean cost within the budget (an exact search over the bins'
   accuracy-cost frontiers): easy bins can spend less so hard ones can spend more.
5. Out of sample: the row's accuracy and tokens on the held-out part against the best uniform
   strategy there that spends at most TOKEN_SLACK more tokens, paired (bootstrap 95%).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from reasoncli.bench.metrics import bootstrap_mean, wilson
from reasoncli.errors import UsageError
from reasoncli.tune.candidates import Candidate, CandidateSet, Outcome
from reasoncli.tune.difficulty import ESTIMATES, SCORED, auc, estimate
from reasoncli.tune.policy import Action, Expected, PolicyBin, PolicyRow, TunedPolicy

_T = TypeVar("_T")

__all__ = [
    "ACCEPT",
    "TOKEN_SLACK",
    "BinStats",
    "EstimateScore",
    "FrontierPoint",
    "RowResult",
    "TuneSettings",
    "allocate",
    "fit_policy",
    "held_out_mask",
]

TOKEN_SLACK = 0.10
"""The uniform side of a comparison may spend this much more than the policy: uniform
strategies come in steps (vote n=7, n=8) and cannot be matched to the token, so the tie goes
against the policy."""
ACCEPT = ("significant", "better")
"""significant: the paired 95% interval of the gain is above 0; better: the gain is above 0."""
HARD_PASS_RATE = 0.5  # a question is hard when fewer than half its later branches are right


@dataclass(frozen=True)
class TuneSettings:
    budgets: Sequence[int] = (64, 128, 256, 512, 1024)
    bins: int = 4
    estimate: str | None = None  # None: the one with the best AUC on the fit part
    seed: int = 0
    accept: str = "significant"


@dataclass(frozen=True)
class EstimateScore:
    name: str
    auc_fit: float | None
    auc_held_out: float | None


@dataclass(frozen=True)
class BinStats:
    bin: PolicyBin
    fit: int
    held_out: int
    pass_rate: float  # mean true pass rate of the fit questions in the bin


@dataclass(frozen=True)
class FrontierPoint:
    label: str
    kind: str  # "uniform" | "policy"
    questions: int
    correct: int
    accuracy: float
    low: float
    high: float
    generated: float
    verifier: float
    note: str = ""

    @property
    def total(self) -> float:
        return self.generated + self.verifier


@dataclass(frozen=True)
class RowResult:
    budget: int
    actions: list[Action] | None  # None: no choice fits the budget (the pilot alone costs more)
    fit_accuracy: float = 0.0
    fit_tokens: float = 0.0
    held_out: FrontierPoint | None = None
    baseline: FrontierPoint | None = None
    gain: tuple[float, float, float] | None = None  # mean, low, high (paired, held-out)
    passed: bool = False
    why: str = ""
    # against `auto` with its constants, when a results file has an auto run
    versus_auto: tuple[FrontierPoint, tuple[float, float, float]] | None = None


@dataclass
class TuneResult:
    questions: int
    fit: int
    held_out: int
    pilot_source: str
    pilot: int
    max_tokens: int
    estimates: list[EstimateScore]
    estimate: str
    bins: list[BinStats]
    rows: list[RowResult]
    frontier: list[FrontierPoint]
    policy: TunedPolicy | None
    settings: TuneSettings
    notes: list[str] = field(default_factory=list)
    pilot_verifier: str | None = None  # scores the pilots: the estimate reads its scores


def held_out_mask(ids: Sequence[str], seed: int) -> np.ndarray:
    """True for held-out questions: the first 8 bytes of sha256(f"{seed}:{id}") below half."""
    keys = [hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8] for i in ids]
    return np.array([int.from_bytes(k, "big") >= 1 << 63 for k in keys])


def _describe(
    name: str, low: float | None, up_to: float | None, pilot: int, max_tokens: int
) -> str:
    """A bin's range in words; `low` is the bound of the bin before (None: the first bin)."""
    if name in SCORED:
        what = "best pilot score" if name == "verifier-best" else "weighted leader's share"
        if up_to is None:
            return f"{what} below {1 - low:.3f}" if low is not None else "every question"
        return f"{what} at least {1 - up_to:.3f}"
    if name == "disagreement":
        most = pilot if low is None else round((1 - low) * pilot) - 1
        least = 0 if up_to is None else round((1 - up_to) * pilot)
        if least == most:
            return f"{least} of {pilot} pilots agree"
        return f"{least} to {most} of {pilot} pilots agree"
    if name == "length":
        above = "" if low is None else f"over {low * max_tokens:.0f} and "
        if up_to is None:
            return f"pilots average {above or 'any length '}".rstrip() + (
                " tokens" if above else ""
            )
        return f"pilots average {above}at most {up_to * max_tokens:.0f} tokens"
    if up_to is None:
        return f"difficulty above {low:.3f}" if low is not None else "every question"
    steps = int(up_to * pilot + 1e-9)  # whole disagreement steps of 1/pilot
    share = (up_to - steps / pilot) * (pilot + 1)  # the length part, a share of the cap
    tokens = f"pilots averaging at most {share * max_tokens:.0f} tokens"
    harder = "" if low is None else "harder than the bin before, up to: "
    if steps == 0:
        return f"{harder}{pilot} of {pilot} agree, {tokens}"
    more = pilot - steps + 1
    agreeing = f"{more}" if more == pilot else f"{more}+"
    return f"{harder}{agreeing} of {pilot} agree, or {pilot - steps} with {tokens}"


def _bins(values: np.ndarray, count: int) -> list[float | None]:
    """Upper bounds from quantiles of `values` (observed values, ties merged); last is None."""
    qs = [i / count for i in range(1, count)]
    cuts = sorted({float(np.quantile(values, q, method="lower")) for q in qs})
    cuts = [c for c in cuts if c < values.max()]
    return [*cuts, None]


def _bin_index(d: np.ndarray, bounds: list[float | None]) -> np.ndarray:
    out = np.full(len(d), len(bounds) - 1)
    for i in reversed(range(len(bounds) - 1)):
        out[d <= bounds[i]] = i  # type: ignore[operator]
    return out


@dataclass(frozen=True)
class _Arm:
    """What a policy can pick for a bin: a configuration and its outcome after the pilot."""

    action: Action
    outcome: Outcome


def _rising(items: list[_T], right: Callable[[_T], int]) -> list[_T]:
    """Of `items` sorted by cost, those with more right answers than every cheaper one: the
    accuracy-cost frontier."""
    kept, best = [], -1
    for item in items:
        if right(item) > best:
            kept.append(item)
            best = right(item)
    return kept


def _frontier_options(arms: list[_Arm], mask: np.ndarray) -> list[tuple[int, float, int]]:
    """(right, cost, arm index) of the arms on this bin's accuracy-cost frontier."""
    rows = []
    for i, arm in enumerate(arms):
        o = arm.outcome
        rows.append((int(o.correct[mask].sum()), float(o.total[mask].sum()), i))
    rows.sort(key=lambda r: (r[1], -r[0], r[2]))
    return _rising(rows, lambda r: r[0])


def allocate(options: list[list[tuple[int, float, int]]], cap: float) -> list[int] | None:
    """One option per bin maximising the right answers with total cost within `cap`: exact, by
    keeping only the frontier of partial sums (cost up, right strictly up) bin by bin."""
    states: list[tuple[float, int, tuple[int, ...]]] = [(0.0, 0, ())]
    for bin_options in options:
        grown = [
            (cost + c, right + r, chosen + (i,))
            for cost, right, chosen in states
            for r, c, i in bin_options
            if cost + c <= cap + 1e-6
        ]
        grown.sort(key=lambda s: (s[0], -s[1]))
        states = _rising(grown, lambda s: s[1])
        if not states:
            return None
    top = max(states, key=lambda s: (s[1], -s[0]))
    return list(top[2])


def _point(label: str, kind: str, o: Outcome, note: str = "") -> FrontierPoint:
    n, right = len(o.correct), int(o.correct.sum())
    low, high = wilson(right, n)
    return FrontierPoint(
        label,
        kind,
        n,
        right,
        right / n if n else 0.0,
        low,
        high,
        float(o.generated.mean()) if n else 0.0,
        float(o.verifier.mean()) if n else 0.0,
        note,
    )


def _policy_outcome(
    arms: list[_Arm], chosen: list[int], bins: np.ndarray, mask: np.ndarray
) -> Outcome:
    """Per question of `mask`: the outcome of the arm its bin chose."""
    questions = np.flatnonzero(mask)
    pairs = [(arms[chosen[bins[q]]].outcome, q) for q in questions]
    return Outcome(
        np.array([o.correct[q] for o, q in pairs], dtype=bool),
        np.array([o.generated[q] for o, q in pairs], dtype=float),
        np.array([o.verifier[q] for o, q in pairs], dtype=float),
    )


def _baseline(
    uniform: list[Candidate], mask: np.ndarray, tokens: float
) -> tuple[Candidate, Outcome] | None:
    """The most accurate uniform strategy on `mask` within the policy's tokens (+ slack)."""
    best: tuple[int, float, Candidate, Outcome] | None = None
    for c in uniform:
        o = c.alone.take(mask)
        cost = float(o.total.mean())
        if cost > tokens * (1 + TOKEN_SLACK):
            continue
        right = int(o.correct.sum())
        if best is None or (right, -cost) > (best[0], -best[1]):
            best = (right, cost, c, o)
    return None if best is None else (best[2], best[3])


def fit_policy(cs: CandidateSet, settings: TuneSettings) -> TuneResult:
    """Everything `reason tune` reports; `policy` is None when no row beat uniform strategies."""
    if settings.accept not in ACCEPT:
        raise ValueError(f"accept must be one of {ACCEPT}")
    held = held_out_mask(cs.ids, settings.seed)
    fit = ~held
    pilots = cs.pilots
    hard = pilots.pass_rate < HARD_PASS_RATE
    usable = [n for n in ESTIMATES if pilots.scored or n not in SCORED]
    if settings.estimate is not None and settings.estimate not in usable:
        raise UsageError(
            f"--estimate {settings.estimate} reads verifier scores, and the pilot file "
            f"({pilots.source}) has none: give a best-of-n run with a verifier"
        )
    values = {name: np.array([estimate(name, p) for p in pilots.pilots]) for name in usable}
    scores = [
        EstimateScore(name, auc(d[fit], hard[fit]), auc(d[held], hard[held]))
        for name, d in values.items()
    ]
    free = [s for s in scores if s.name not in SCORED]
    name = settings.estimate or max(free, key=lambda s: s.auc_fit or 0.0).name
    scored = name in SCORED
    d = values[name]
    bounds = _bins(d[fit], settings.bins)
    bins_of = _bin_index(d, bounds)
    policy_bins = [
        PolicyBin(
            name=f"bin{i + 1}",
            up_to=None if b is None else round(b, 6),
            means=_describe(name, bounds[i - 1] if i else None, b, pilots.size, pilots.max_tokens),
        )
        for i, b in enumerate(bounds)
    ]
    stats = [
        BinStats(
            pb,
            int((fit & (bins_of == i)).sum()),
            int((held & (bins_of == i)).sum()),
            float(pilots.pass_rate[fit & (bins_of == i)].mean()),
        )
        for i, pb in enumerate(policy_bins)
    ]
    after = [c.after_scored_pilot if scored else c.after_pilot for c in cs.candidates]
    arms = [_Arm(c.action, o) for c, o in zip(cs.candidates, after, strict=True) if o is not None]
    uniform = list(cs.candidates)
    options = [_frontier_options(arms, fit & (bins_of == i)) for i in range(len(bounds))]
    n_fit = int(fit.sum())
    rows: list[RowResult] = []
    for budget in sorted(set(settings.budgets)):
        chosen = allocate(options, budget * n_fit)
        if chosen is None:
            cheapest = sum(min(c for _, c, _ in o) for o in options) / n_fit
            rows.append(
                RowResult(budget, None, why=f"the cheapest choice costs {cheapest:.0f} tok/q")
            )
            continue
        if rows and rows[-1].actions == [arms[i].action for i in chosen]:
            continue  # a larger budget that buys nothing more: the row below already says it
        rows.append(_judge(budget, arms, chosen, bins_of, fit, held, uniform, settings))
    passed = [r for r in rows if r.passed and r.actions is not None]
    policy = None
    if passed:
        policy = TunedPolicy(
            estimate=name,
            pilot=pilots.size,
            verifier=pilots.verifier if scored else None,
            max_tokens=pilots.max_tokens,
            bins=tuple(policy_bins),
            budgets=tuple(_policy_row(r, policy_bins) for r in passed),
            tuned_on=(
                f"{len(cs.ids)} questions of {', '.join(cs.sources)}: fit on {n_fit}, checked "
                f"on {int(held.sum())} held out (question-id hash, seed {settings.seed})"
            ),
        )
    frontier = _frontier(uniform, held, rows)
    return TuneResult(
        questions=len(cs.ids),
        fit=n_fit,
        held_out=int(held.sum()),
        pilot_source=pilots.source,
        pilot=pilots.size,
        max_tokens=pilots.max_tokens,
        estimates=scores,
        estimate=name,
        bins=stats,
        rows=rows,
        frontier=frontier,
        policy=policy,
        settings=settings,
        notes=list(cs.notes),
        pilot_verifier=pilots.verifier if scored else None,
    )


def _judge(
    budget: int,
    arms: list[_Arm],
    chosen: list[int],
    bins_of: np.ndarray,
    fit: np.ndarray,
    held: np.ndarray,
    uniform: list[Candidate],
    settings: TuneSettings,
) -> RowResult:
    fitted = _policy_outcome(arms, chosen, bins_of, fit)
    tested = _policy_outcome(arms, chosen, bins_of, held)
    point = _point(f"policy @{budget}", "policy", tested)
    base = _baseline(uniform, held, point.total)
    row = RowResult(
        budget,
        [arms[i].action for i in chosen],
        fit_accuracy=float(fitted.correct.mean()),
        fit_tokens=float(fitted.total.mean()),
        held_out=point,
    )
    if base is None:
        return replace(row, passed=True, why="no uniform strategy is as cheap")
    c, o = base
    versus_auto = None
    for a in uniform:
        if a.action.strategy == "auto":
            ao = a.alone.take(held)
            paired = tested.correct.astype(float) - ao.correct.astype(float)
            versus_auto = (_point(a.label, "uniform", ao), bootstrap_mean(paired, settings.seed))
    diff = tested.correct.astype(float) - o.correct.astype(float)
    gain = bootstrap_mean(diff, seed=settings.seed)
    passed = gain[1] > 0 if settings.accept == "significant" else gain[0] > 0
    baseline = _point(c.label, "uniform", o, c.verifier_note)
    why = (
        f"{point.accuracy:.1%} at {point.total:.0f} tok/q against {c.label} "
        f"{baseline.accuracy:.1%} at {baseline.total:.0f}: {gain[0] * 100:+.1f} pts "
        f"({gain[1] * 100:+.1f} to {gain[2] * 100:+.1f}, paired 95%)"
    )
    return RowResult(
        budget,
        row.actions,
        row.fit_accuracy,
        row.fit_tokens,
        point,
        baseline,
        gain,
        passed,
        why,
        versus_auto,
    )


def _policy_row(r: RowResult, bins: list[PolicyBin]) -> PolicyRow:
    assert r.actions is not None and r.held_out is not None
    expected = None
    if r.baseline is not None and r.gain is not None:
        expected = Expected(
            questions=r.held_out.questions,
            accuracy=round(r.held_out.accuracy, 4),
            tokens=round(r.held_out.total, 1),
            baseline=r.baseline.label,
            baseline_accuracy=round(r.baseline.accuracy, 4),
            baseline_tokens=round(r.baseline.total, 1),
            gain=round(r.gain[0], 4),
            gain_low=round(r.gain[1], 4),
            gain_high=round(r.gain[2], 4),
        )
    return PolicyRow(
        budget=r.budget,
        strategies={b.name: a for b, a in zip(bins, r.actions, strict=True)},
        held_out=expected,
    )


def _frontier(
    uniform: list[Candidate], held: np.ndarray, rows: list[RowResult]
) -> list[FrontierPoint]:
    """Held-out points: each uniform family at k = 1, 2, 4, ... and its largest k, every other
    configuration, and each policy row; sorted by total tokens."""
    largest: dict[str, int] = {}
    for c in uniform:
        family = c.label.replace(f"n={c.action.branches}", "n=")
        largest[family] = max(largest.get(family, 0), c.action.branches)
    points = []
    for c in uniform:
        k = c.action.branches
        family = c.label.replace(f"n={k}", "n=")
        if k & (k - 1) == 0 or k == largest[family]:
            points.append(_point(c.label, "uniform", c.alone.take(held), c.verifier_note))
    points += [r.held_out for r in rows if r.held_out is not None]
    return sorted(points, key=lambda p: (p.total, -p.accuracy))
