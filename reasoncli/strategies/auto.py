"""`auto`: compute-optimal allocation of a token budget, per question (Snell et al. 2024).

Snell et al. found the best use of test-time compute depends on how hard the question is for
the model, and that agreement among a few samples is a cheap proxy for difficulty. So:

1. **Pilot.** `--pilot` branches, decoded together. Agreement = the leading answer's count over
   all pilots (a pilot with no answer agrees with nothing); difficulty = 1 - agreement.
2. **Decide** (`plan_after_pilot`, a pure function):
   - easy (agreement >= EASY_AGREEMENT, from at least MIN_EASY_VOTES pilots): answer now;
   - medium (agreement >= MEDIUM_AGREEMENT): widen in parallel, with more branches added to the
     *pilot's* engine (the prompt is not decoded again), until the vote settles (`--stop-rule`)
     or the budget cannot pay for another branch;
   - hard (below that, or no answers): Snell's hard questions do best with a mix of parallel and
     sequential compute, so HARD_PARALLEL_SHARE of what is left widens in parallel, and the rest
     goes to revision chains (`revise` rounds) that start from the best attempts so far.
3. **Answer**: a majority vote over every answer produced (pilots, widening, revision rounds).

**A tuned policy** (`reason tune` writes it into the model's models.yaml entry) replaces step 2
when the model has one: the pilot's difficulty estimate picks a bin, and the policy's row for
the budget names the strategy for that bin (`reasoncli.tune.follow`). A vote widens the pilot
(its branches count, voted pilots first as they finished); any other strategy runs after the
pilot as `reason ask` would run it, and the pilot's tokens are part of the cost. With a policy,
`--budget-tokens` picks the row with the largest mean budget not above it: a mean over
questions, so a hard question may spend more than it and an easy one less. The constants
below stay the fallback (no policy, or a run whose --pilot or --max-tokens differ from it).

The budget counts generated tokens. A branch or round is only started when its whole
per-branch cap still fits, so a run never exceeds `--budget-tokens`. Without `--max-tokens` the
cap is derived from the budget (`branch_cap`): the pilot may spend PILOT_BUDGET_SHARE of it, the
rest pays for widening or revision, and no branch gets fewer than MIN_BRANCH_TOKENS. Without
`--budget-tokens` the budget is `--branches x --max-tokens`, what `vote` would spend at most.
Revision rounds run one at a time in engines of their own (their prompts differ), so they cost
more wall time per token than the batched parallel phases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from reasoncli.answers import answers_equivalent
from reasoncli.engine.branches import Branch
from reasoncli.engine.protocols import ModelSession
from reasoncli.engine.sampling import Sampling
from reasoncli.errors import UsageError
from reasoncli.events import (
    BranchFinished,
    BranchStarted,
    BranchText,
    Event,
    EventSink,
    Note,
    RunStarted,
)
from reasoncli.results import BranchResult, Result, VoteGroup
from reasoncli.stopping import BetaRule, EscRule, StopRule, beta_leader_probability
from reasoncli.strategies.base import Kind, StrategyInfo, StrategyOptions, get_strategy, register
from reasoncli.strategies.builder import Cost, ResultBuilder, vote_groups
from reasoncli.strategies.parallel import ParallelRun, Policy, stop_rule, vote_event
from reasoncli.strategies.revise import Round, attempt_text, run_round
from reasoncli.voting import majority_vote

if TYPE_CHECKING:
    from reasoncli.tune.follow import Choice, PolicySource
    from reasoncli.tune.policy import PolicyRow, TunedPolicy

# Agreement (leader's count / pilots) at or above which a question is easy: stop after the pilot.
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


@dataclass
class _State:
    """Bookkeeping for one run, kept apart from the engine so revisions can join it."""

    run: ParallelRun
    budget: int
    phases: dict[str, list[int]] = field(
        default_factory=lambda: {"pilot": [], "widen": [], "revise": [], "policy": []}
    )
    rounds: list[Round] = field(default_factory=list)
    stop: str | None = None  # why the run ended before spending its budget
    inner: Result | None = None  # the strategy a tuned policy ran after the pilot
    offset: int = 0  # its branch ids follow the pilot's

    def spent(self) -> int:
        engine = sum(b.n_tokens for b in self.run.engine.branches)
        inner = self.inner.generated_tokens if self.inner else 0
        return engine + inner + sum(r.branch.tokens for r in self.rounds if r.branch)

    def committed(self) -> int:
        """Spent, plus what live branches may still generate."""
        live = sum(b.max_tokens - b.n_tokens for b in self.run.engine.live)
        return self.spent() + live

    def tokens(self, phase: str) -> int:
        if phase == "policy":
            return self.inner.generated_tokens if self.inner else 0
        if phase == "revise":
            return sum(r.branch.tokens for r in self.rounds if r.branch)
        by_id = {b.id: b for b in self.run.engine.branches}
        return sum(by_id[i].n_tokens for i in self.phases[phase])


class _Widen(Policy):
    """Widening as a `ParallelRun` policy: queue what the budget pays for, launch it in waves
    (`settle_wave`), stop once the vote settles.

    A branch is queued only while `limit` covers it and every queued or live branch in full,
    so launching never overshoots; tokens a branch leaves unused pay for the next one.
    """

    def __init__(
        self, state: _State, limit: int, rule: StopRule, sampling: Sampling, seed: int
    ) -> None:
        self.state, self.limit, self.rule = state, limit, rule
        self.sampling, self.seed = sampling, seed
        self._wave = (-1, 1)  # (answers seen, wave size), recomputed when answers change

    def top_up(self, run: ParallelRun) -> None:
        free = self.limit - self.state.committed()
        while (len(run.queued) + 1) * run.max_tokens <= free:
            run.queue(self.sampling.with_seed(self.seed + run.planned), "widen")
            self.state.phases["widen"].append(run.planned - 1)

    def launch(self, run: ParallelRun) -> int:
        seen = len(run.finish_order)
        if self._wave[0] != seen:
            answers = [run.answers[i] for i in run.finish_order]
            self._wave = (seen, settle_wave(self.rule, answers))
        wanted = self._wave[1] - len(run.engine.live)
        return max(0, min(len(run.queued), run.engine.capacity, wanted))

    def finished(self, run: ParallelRun, branch: Branch) -> None:
        run.engine.release(branch)  # frees the slot; the text stays on the branch
        self.top_up(run)

    def should_stop(self, run: ParallelRun) -> str | None:
        reason = self.rule.decide([run.answers[i] for i in run.finish_order])
        return f"vote settled while widening: {reason}" if reason else None


class _AllAtOnce(Policy):
    """A policy's widening: every queued branch starts as soon as a slot is free, no stop rule,
    so the run is the k-branch vote `reason tune` measured."""

    def launch(self, run: ParallelRun) -> int:
        return min(len(run.queued), run.engine.capacity)


def _shifted(emit: EventSink, offset: int) -> EventSink:
    """Events of a strategy run after the pilot, with branch ids after the pilot's (its own
    start line is dropped: the view already shows this run)."""

    def sink(event: Event) -> None:
        if isinstance(event, RunStarted):
            return
        if isinstance(event, BranchStarted):
            parent = None if event.parent is None else event.parent + offset
            event = replace(event, branch=event.branch + offset, parent=parent)
        elif isinstance(event, BranchText | BranchFinished):
            event = replace(event, branch=event.branch + offset)
        emit(event)

    return sink


def _seen(answers: Sequence[str | None]) -> str:
    vote = majority_vote(answers)
    if vote.answer is None:
        return f"none of {len(answers)} pilots answered"
    return f"{vote.groups[0].count}/{len(answers)} pilots agree on {vote.answer}"


@register
class Auto:
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="auto",
        kind=Kind.ADAPTIVE,
        summary="Compute-optimal: pilot branches judge difficulty, then stop, widen or revise.",
    )

    def __init__(
        self, thresholds: Thresholds | None = None, policies: PolicySource | None = None
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.policies = policies  # None: the `policy:` of the model's models.yaml entry

    def _tuned(
        self, model: str, options: StrategyOptions, budget: int
    ) -> tuple[TunedPolicy | None, PolicyRow | None, str]:
        """The model's policy and the row this run follows (None: the constants decide), and
        why a policy that exists is not followed."""
        from reasoncli.tune.follow import applicable, catalog_policy

        policy = (self.policies or catalog_policy)(model)
        if policy is None:
            return None, None, ""
        row, why = applicable(policy, options, budget)
        return policy, row, why

    def check(self, options: StrategyOptions) -> None:
        options.check()
        branch_cap(options)

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        budget = total_budget(options)
        policy, row, skipped = self._tuned(session.name, options, budget)
        if policy is not None and row is not None:
            options = replace(options, pilot=policy.pilot, max_tokens=policy.max_tokens)
            mt = policy.max_tokens
            widest = max(
                (a.branches for a in row.strategies.values() if a.widens_pilot(mt)), default=0
            )
            slots = max(options.pilot, min(widest - options.pilot, MAX_LIVE_BRANCHES))
            opening = (
                f"budget {budget:,} tokens: following {session.name}'s tuned policy (its "
                f"{row.budget} tok/q row); {options.pilot} pilot branch(es) of up to {mt} "
                "tokens judge the difficulty"
            )
        else:
            cap = branch_cap(options)
            options = replace(options, max_tokens=cap.tokens)
            mt = cap.tokens
            slots = max(options.pilot, min(budget // mt, MAX_LIVE_BRANCHES))
            opening = (
                f"budget {budget:,} tokens: {options.pilot} pilot branch(es) of "
                f"{cap.describe()} judge the difficulty"
            )
            if skipped:
                opening += f" (the tuned policy is not used: {skipped})"
        run = ParallelRun(
            self.info.name,
            question,
            session,
            emit,
            max_tokens=mt,
            max_branches=slots,
            multiple_choice=options.multiple_choice,
        )
        state = _State(run, budget)
        plan: Plan | None = None
        choice: Choice | None = None
        try:
            emit(Note(opening, "plan"))
            sampling = options.sampling or session.sampling
            for _ in range(options.pilot):
                b = run.add(sampling.with_seed(options.seed + len(run.engine.branches)), "pilot")
                state.phases["pilot"].append(b.id)
            try:
                run.drive()
                answers = [run.answers.get(i) for i in state.phases["pilot"]]
                if not run.interrupted and policy is not None and row is not None:
                    from reasoncli.tune.difficulty import Pilot
                    from reasoncli.tune.follow import choose

                    tokens = [run.engine.branches[i].n_tokens for i in state.phases["pilot"]]
                    pilot = Pilot(answers, tokens, mt)
                    choice = choose(policy, row, pilot, _seen(answers))
                    emit(Note(choice.reason, "plan"))
                    self._follow_choice(choice, question, session, options, sampling, state)
                elif not run.interrupted:
                    plan = plan_after_pilot(answers, budget - state.spent(), mt, self.thresholds)
                    emit(Note(plan.reason, "plan"))
                    self._follow(plan, question, session, options, sampling, state)
            except KeyboardInterrupt:  # between phases; each phase catches its own
                run.interrupted = True
            return self._result(plan, options, state, choice, skipped)
        finally:
            run.close()

    # -- phases -----------------------------------------------------------------------------
    def _follow_choice(
        self,
        choice: Choice,
        question: str,
        session: ModelSession,
        options: StrategyOptions,
        sampling: Sampling,
        state: _State,
    ) -> None:
        """Run what the policy chose: widen the pilot's vote to its branches, or run another
        strategy after the pilot."""
        from reasoncli.tune.follow import options_for

        action, run = choice.action, state.run
        if not action.widens_pilot(options.max_tokens):
            inner_options = options_for(action, options, sampling)
            strategy = get_strategy(action.strategy)
            strategy.check(inner_options)
            state.offset = len(run.engine.branches)
            state.inner = strategy.run(
                question, session, inner_options, _shifted(run.emit, state.offset)
            )
            run.interrupted = run.interrupted or state.inner.interrupted
            return
        extra = action.branches - len(state.phases["pilot"])
        if extra <= 0:
            state.stop = f"policy, bin {choice.bin}: answering from the pilot"
            return
        for b in run.engine.branches:
            if b.done:
                run.engine.release(b)  # frees the pilots' slots; their text stays
        for _ in range(extra):
            run.queue(sampling.with_seed(options.seed + run.planned), "widen")
            state.phases["widen"].append(run.planned - 1)
        before = getattr(run, "generate_s", 0.0)
        run.drive(policy=_AllAtOnce())
        run.generate_s += before
        run.emit(Note(f"widened by {extra} branch(es); {state.spent():,} tokens spent", "plan"))

    def _follow(
        self,
        plan: Plan,
        question: str,
        session: ModelSession,
        options: StrategyOptions,
        sampling: Sampling,
        state: _State,
    ) -> None:
        run = state.run
        if plan.path == "easy":
            state.stop = f"easy: {plan.votes}/{plan.pilots} pilots agree"
            return
        if plan.widen_tokens >= options.max_tokens:
            limit = state.spent() + plan.widen_tokens
            settled = self._widen(state, limit, stop_rule(options), sampling, options.seed)
            if settled or run.interrupted:
                state.stop = settled
                return
        if plan.path == "hard" and plan.rounds_per_chain > 0:
            self._revise(state, question, session, options, sampling, plan.rounds_per_chain)

    def _widen(
        self, state: _State, limit: int, rule: StopRule, sampling: Sampling, seed: int
    ) -> str | None:
        """More branches in the pilot's engine, while `limit` can pay for each one in full.

        Returns the stop rule's reason when the vote settles, else None (budget spent).
        """
        run = state.run
        answers = [run.answers[i] for i in run.finish_order]
        if reason := rule.decide(answers):
            run.emit(Note(f"the pilots already settle the vote: {reason}", "early_stop"))
            return reason
        for b in run.engine.branches:
            if b.done:
                run.engine.release(b)  # frees the pilots' slots; their text stays
        policy = _Widen(state, limit, rule, sampling, seed)
        policy.top_up(run)
        before = getattr(run, "generate_s", 0.0)
        run.drive(policy=policy)
        run.generate_s += before
        started = len(run.engine.branches)  # queued ones never started after a stop
        state.phases["widen"] = [i for i in state.phases["widen"] if i < started]
        n = len(state.phases["widen"])
        run.emit(Note(f"widened by {n} branch(es); {state.spent():,} tokens spent", "plan"))
        return run.stop_reason

    def _revise(
        self,
        state: _State,
        question: str,
        session: ModelSession,
        options: StrategyOptions,
        sampling: Sampling,
        rounds_per_chain: int,
    ) -> None:
        """Revision chains from the best attempts, while the budget pays for whole rounds."""
        run, emit, mt = state.run, state.run.emit, options.max_tokens
        finished = [run.engine.branches[i] for i in run.finish_order]
        order = best_attempts(
            [run.answers[b.id] for b in finished], [b.finish_reason or "" for b in finished]
        )
        starts = [finished[i] for i in order]
        next_id = len(run.engine.branches)
        for chain in range(self.thresholds.hard_max_chains):
            if not starts or state.spent() + mt > state.budget:
                return
            start = starts[chain % len(starts)]
            prev_id, prev_text, prev_answer = start.id, start.text, run.answers[start.id]
            emit(
                Note(
                    f"revision chain {chain + 1}: revising #{start.id} "
                    f"({prev_answer or 'no answer'})",
                    "plan",
                )
            )
            for k in range(rounds_per_chain):
                if state.spent() + mt > state.budget:
                    return
                r = run_round(
                    session,
                    question,
                    attempt_text(prev_text, session.think_tags),
                    branch_id=next_id,
                    parent=prev_id,
                    label=f"revise {chain + 1}.{k + 1}",
                    sampling=sampling.with_seed(options.seed + next_id),
                    max_tokens=mt,
                    emit=emit,
                    multiple_choice=options.multiple_choice,
                )
                next_id += 1
                state.rounds.append(r)
                if r.branch is not None:
                    state.phases["revise"].append(r.branch.id)
                if r.interrupted or r.branch is None:
                    run.interrupted = True
                    return
                answers, _ = self._all_answers(state)
                emit(vote_event(majority_vote(answers), len(answers), len(answers)))
                repeated = r.branch.answer is not None and prev_answer is not None
                if repeated and answers_equivalent(r.branch.answer or "", prev_answer or ""):
                    break  # the revision confirms its attempt: start the next chain
                prev_id, prev_text, prev_answer = r.branch.id, r.branch.text, r.branch.answer

    # -- result -----------------------------------------------------------------------------
    @staticmethod
    def _all_answers(state: _State) -> tuple[list[str | None], list[int]]:
        """Every finished answer in the order it arrived, and the branch ids it came from."""
        run = state.run
        ids = list(run.finish_order)
        answers = [run.answers[i] for i in ids]
        for r in state.rounds:
            if r.branch is not None and not r.interrupted:
                ids.append(r.branch.id)
                answers.append(r.branch.answer)
        return answers, ids

    def _result(
        self,
        plan: Plan | None,
        options: StrategyOptions,
        state: _State,
        choice: Choice | None = None,
        skipped: str = "",
    ) -> Result:
        """One result for every phase: the pilot's engine (and widening), the revision rounds,
        and the strategy a tuned policy ran, whose answer then stands."""
        run = state.run
        builder = ResultBuilder(self.info.name, run.question, run.session, started=run.started)
        builder.add(run.branch_results(), run.cost())
        for r in state.rounds:
            builder.add([r.branch] if r.branch is not None else [], r.cost)
        answers, ids = self._all_answers(state)
        vote = majority_vote(answers)
        answer, share, votes = vote.answer, vote.share, vote_groups(vote, ids)
        if state.inner is not None:  # the policy's strategy answers; the pilot only chose it
            answer, share, votes = self._merge(builder, state)
        details = self._details(plan, state, builder.branches)
        if choice is not None:
            details["path"] = "policy"
            details["reason"] = choice.reason
        details["policy"] = choice.to_json() if choice is not None else None
        details["policy_not_used"] = skipped or None
        details["max_tokens"] = options.max_tokens
        details["max_tokens_derived"] = (
            choice is None  # a policy's cap is its own, not a share of the budget
            and not options.max_tokens_explicit
            and options.budget_tokens is not None
        )
        return builder.build(
            answer,
            share,
            votes,
            expect=options.expect,
            labels={i: phase for phase, members in state.phases.items() for i in members},
            interrupted=run.interrupted,
            stop_reason=state.stop,
            details=details,
        )

    @staticmethod
    def _merge(builder: ResultBuilder, state: _State) -> tuple[str | None, float, list[VoteGroup]]:
        """Add the policy's strategy to the run: its branches (ids after the pilot's), its
        prompt, time and decode counts; returns its answer, share and votes."""
        inner, offset = state.inner, state.offset
        assert inner is not None
        moved = [
            replace(
                b,
                id=b.id + offset,
                parent=None if b.parent is None else b.parent + offset,
                label=b.label or "policy",
            )
            for b in inner.branches
        ]
        state.phases["policy"] = [b.id for b in moved]
        builder.add(moved, Cost.of(inner))
        state.stop = inner.stop_reason
        votes = [
            VoteGroup(g.answer, g.count, g.weight, [m + offset for m in g.members])
            for g in inner.votes
        ]
        return inner.answer, inner.share, votes

    def _details(
        self, plan: Plan | None, state: _State, branches: list[BranchResult]
    ) -> dict[str, Any]:
        phases = ("pilot", "widen", "revise", "policy")
        tokens = {phase: state.tokens(phase) for phase in phases}
        total = sum(tokens.values())
        pilot_ids = set(state.phases["pilot"])
        return {
            "budget_tokens": state.budget,
            "path": plan.path if plan else None,
            "difficulty": plan.difficulty if plan else None,
            "agreement": plan.agreement if plan else None,
            "reason": plan.reason if plan else "interrupted during the pilot",
            "pilot_answer": plan.leader if plan else None,
            "pilot_answers": [b.answer for b in branches if b.id in pilot_ids],
            "tokens": {**tokens, "total": total},
            "unspent": state.budget - total,
            "phases": state.phases,
            "plan": asdict(plan) if plan else None,
            "thresholds": asdict(self.thresholds),
            # what a judge read, when the policy's strategy has one (best-of-n, beam, dvts)
            "verifier_tokens": int(state.inner.details.get("verifier_tokens", 0))
            if state.inner
            else 0,
            "inner": state.inner.details if state.inner else None,
        }
