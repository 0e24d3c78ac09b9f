"""What `auto` decides, as pure functions of numbers: how hard a question is from the pilot's
answers (`plan_after_pilot`), how the budget splits and what a branch may spend (`branch_cap`),
which attempts to revise first and how wide a wave of widening is.

Kept apart from the engine so tests and `benchmarks/auto.py` can vary the thresholds without a
model; `strategies/auto.py` says why the numbers are what they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from reasoncli.errors import UsageError
from reasoncli.options import StrategyOptions
from reasoncli.stopping import BetaRule, EscRule, StopRule, beta_leader_probability
from reasoncli.voting import majority_vote

# With 4 pilots that is 3 or 4 agreeing; the Beta rule puts 3-of-4 at P(leader ahead) = 0.81.
EASY_AGREEMENT = 0.75
# Fewest agreeing pilots for "easy", so a single pilot's answer is never taken as agreement.
MIN_EASY_VOTES = 2
# Agreement at or above which a question is medium (widen in parallel); below it, hard.
# With 4 pilots: 2 agreeing is medium, all different (or no answers) is hard.
MEDIUM_AGREEMENT = 0.5
# Hard questions: the share of the remaining budget spent widening in parallel before revising.
HARD_PARALLEL_SHARE = 0.5
# Hard questions: revision rounds per chain; a chain also ends when a round repeats its answer.
HARD_ROUNDS = 2
# Hard questions: at most this many revision chains (they run one at a time).
HARD_MAX_CHAINS = 8
# Branches alive at once in the pilot engine; finished branches free their slot for new ones.
MAX_LIVE_BRANCHES = 16
# Without --max-tokens: the share of --budget-tokens the pilot may spend; the rest is left for
# widening or revision, where a hard question needs it.
PILOT_BUDGET_SHARE = 0.5
# Without --max-tokens: the smallest per-branch cap, room for a short worked answer. A budget that
# cannot give every pilot branch this much is a usage error.
MIN_BRANCH_TOKENS = 32

PATHS = ("easy", "medium", "hard")  # what `Plan.path` can be


@dataclass(frozen=True)
class Thresholds:
    """The decision constants, as one value tests and benchmarks can vary."""

    easy: float = EASY_AGREEMENT
    medium: float = MEDIUM_AGREEMENT
    min_easy_votes: int = MIN_EASY_VOTES
    hard_parallel_share: float = HARD_PARALLEL_SHARE
    hard_rounds: int = HARD_ROUNDS
    hard_max_chains: int = HARD_MAX_CHAINS


@dataclass(frozen=True)
class Plan:
    """What to do after the pilot, and why."""

    path: str  # "easy" | "medium" | "hard"
    difficulty: float  # 1 - agreement
    agreement: float  # leader's count / pilots
    leader: str | None
    votes: int  # pilots that gave the leading answer
    pilots: int
    reason: str
    widen_tokens: int  # budget for widening in parallel
    revise_tokens: int  # budget for revision rounds (at least; they get what widening leaves)
    rounds_per_chain: int = 0


def plan_after_pilot(
    answers: Sequence[str | None],
    budget_left: int,
    max_tokens: int,
    thresholds: Thresholds | None = None,
) -> Plan:
    """Classify the question from the pilots' answers and split the remaining budget.

    `budget_left` is in generated tokens; the split is in whole branches of `max_tokens`.
    """
    t = thresholds or Thresholds()
    n = len(answers)
    vote = majority_vote(answers)
    votes = vote.groups[0].count if vote.groups else 0
    agreement = votes / n if n else 0.0
    leader = vote.answer
    seen = f"{votes}/{n} pilots agree on {leader}" if leader else f"none of {n} pilots answered"
    affordable = max(0, budget_left) // max_tokens
    if agreement >= t.easy and votes >= t.min_easy_votes:
        path = "easy"
        reason = f"{seen} (agreement {agreement:.0%} >= {t.easy:.0%}): easy, answering now"
        widen = revise = 0
    elif agreement >= t.medium:
        path = "medium"
        widen, revise = affordable * max_tokens, 0
        reason = (
            f"{seen} (agreement {agreement:.0%} < {t.easy:.0%} for easy): medium, "
            f"widening in parallel by up to {affordable} branch(es) until the vote settles"
        )
    else:
        path = "hard"
        wide = math.floor(affordable * t.hard_parallel_share)
        widen, revise = wide * max_tokens, (affordable - wide) * max_tokens
        why = f"{seen} (agreement {agreement:.0%} < {t.medium:.0%})" if leader else seen
        reason = (
            f"{why}: hard, widening by up to {wide} branch(es), then revising the "
            f"best attempts ({t.hard_rounds} rounds a chain) with the rest"
        )
    if path != "easy" and affordable == 0:
        reason = f"{seen}: {path}, but the budget is spent; answering from the pilots"
    return Plan(
        path=path,
        difficulty=1.0 - agreement,
        agreement=agreement,
        leader=leader,
        votes=votes,
        pilots=n,
        reason=reason,
        widen_tokens=widen,
        revise_tokens=revise,
        rounds_per_chain=t.hard_rounds if path == "hard" else 0,
    )


def best_attempts(answers: Sequence[str | None], finish_reasons: Sequence[str]) -> list[int]:
    """Indices of the attempts worth revising, best first.

    One attempt per distinct answer first, the most popular answers first; then attempts with no
    answer that ended on their own before those cut off at the token limit; then the rest.
    """
    vote = majority_vote(answers)
    natural = [r in ("eos", "stop") for r in finish_reasons]
    heads: list[int] = []
    for g in vote.groups:  # sorted by count; members in index order
        heads.append(min(g.members, key=lambda i: (not natural[i], i)))
    unanswered = sorted(
        (i for i, a in enumerate(answers) if a is None), key=lambda i: (not natural[i], i)
    )
    rest = [i for i in range(len(answers)) if i not in heads and i not in unanswered]
    return heads + unanswered + rest


def total_budget(options: StrategyOptions) -> int:
    """`--budget-tokens`, else what `vote` with the same `--branches` would spend at most."""
    if options.budget_tokens is not None:
        return options.budget_tokens
    return options.branches * options.max_tokens


@dataclass(frozen=True)
class BranchCap:
    """The per-branch token cap a run uses, and where it came from (shown in the plan note)."""

    tokens: int
    derived: bool  # True: divided from --budget-tokens; False: --max-tokens (given or default)

    def describe(self) -> str:
        if self.derived:
            return f"up to {self.tokens} tokens (derived from the budget)"
        return f"up to {self.tokens} tokens"


def branch_cap(options: StrategyOptions) -> BranchCap:
    """The per-branch cap: `--max-tokens` if given, else a share of `--budget-tokens`.

    Raises UsageError when the pilot cannot be paid for, suggesting values that fit.
    """
    budget, pilot = total_budget(options), options.pilot
    if options.budget_tokens is not None and not options.max_tokens_explicit:
        share = int(budget * PILOT_BUDGET_SHARE) // pilot
        cap = min(options.max_tokens, max(share, MIN_BRANCH_TOKENS))
        if pilot * cap > budget:
            raise UsageError(
                f"--budget-tokens ({budget}) is too small: {pilot} pilot branch(es) of at least "
                f"{MIN_BRANCH_TOKENS} tokens need {pilot * MIN_BRANCH_TOKENS}; raise "
                "--budget-tokens or lower --pilot"
            )
        return BranchCap(cap, derived=True)
    cap = options.max_tokens
    if budget < pilot * cap:
        source = "--budget-tokens" if options.budget_tokens is not None else "the budget"
        fits = [f"--max-tokens {budget // pilot} or less"] if budget >= pilot else []
        if budget >= cap:
            fits.append(f"--pilot {budget // cap} or less")
        if options.budget_tokens is not None:
            fits.append("no --max-tokens, so auto divides the budget itself")
        hint = f"; fits: {', '.join(fits)}" if fits else ""
        raise UsageError(
            f"{source} ({budget}) cannot pay for the pilot: --pilot {pilot} x --max-tokens "
            f"{cap} needs at least {pilot * cap}{hint}"
        )
    return BranchCap(cap, derived=False)


def settle_wave(rule: StopRule, answers: Sequence[str | None]) -> int:
    """The fewest more branches that could settle the vote, were they all to join the leader.

    Widening launches that many at a time rather than the whole budget at once: branches decoded
    together finish together, so only waves give the stop rule a chance to save tokens.
    """
    if isinstance(rule, EscRule):
        return rule.window
    if not isinstance(rule, BetaRule):
        return MAX_LIVE_BRANCHES
    counts = [g.count for g in majority_vote(answers).groups] + [0, 0]
    top, second = counts[0], counts[1]
    k = max(0, rule.min_samples - len(answers))
    while k < MAX_LIVE_BRANCHES and beta_leader_probability(top + k, second) < rule.threshold:
        k += 1
    return max(1, k)
