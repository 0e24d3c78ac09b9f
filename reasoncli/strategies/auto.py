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
pilot as `reason ask` would run it, and the pilot's tokens are part of the cost. A policy with a
`verifier` has it score the pilots (the `verifier-*` estimates read the scores, and the scoring
is part of the cost); a best-of-n judged by that verifier then widens the pilot too, its scores
kept, and answers by its pick over every branch. With a policy,
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
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any, ClassVar

from reasoncli.engine.protocols import ModelSession
from reasoncli.engine.sampling import Sampling
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
from reasoncli.strategies.auto_phases import (
    AllAtOnce,
    RunState,
    ScoredAllAtOnce,
    drive_widening,
    free_pilot_slots,
    revise,
    widen,
)
from reasoncli.strategies.auto_plan import (
    MAX_LIVE_BRANCHES,
    PATHS,
    Plan,
    Thresholds,
    branch_cap,
    plan_after_pilot,
    total_budget,
)
from reasoncli.strategies.base import (
    BaseStrategy,
    Kind,
    StrategyInfo,
    StrategyOptions,
    get_strategy,
    register,
)
from reasoncli.strategies.best_of_n import ScoringPolicy, pick_vote
from reasoncli.strategies.builder import Cost, ResultBuilder, vote_groups
from reasoncli.strategies.early_stop import stop_rule
from reasoncli.strategies.parallel import ParallelRun
from reasoncli.verifiers import Verifier, make_verifier
from reasoncli.voting import majority_vote

if TYPE_CHECKING:
    from reasoncli.tune.follow import Choice, PolicySource
    from reasoncli.tune.policy import PolicyRow, TunedPolicy

# The strategy, and what `reason serve` and the benchmarks read of its plan (`auto_plan`).
__all__ = ["MAX_LIVE_BRANCHES", "PATHS", "Auto", "Plan", "Thresholds", "branch_cap", "total_budget"]


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


def _seen(answers: Sequence[str | None], scores: Sequence[float | None] | None = None) -> str:
    vote = majority_vote(answers)
    if vote.answer is None:
        return f"none of {len(answers)} pilots answered"
    seen = f"{vote.groups[0].count}/{len(answers)} pilots agree on {vote.answer}"
    if scores:
        best = max((s for s in scores if s is not None), default=None)
        seen += "" if best is None else f", best verifier score {best:.2f}"
    return seen


@register
class Auto(BaseStrategy):
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

    def _check_own(self, options: StrategyOptions) -> None:
        branch_cap(options)

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        budget = total_budget(options)
        policy, row, skipped = self._tuned(session.name, options, budget)
        verifier: Verifier | None = None
        if policy is not None and row is not None:
            options = replace(options, pilot=policy.pilot, max_tokens=policy.max_tokens)
            mt = policy.max_tokens
            judge = policy.verifier
            widest = max(
                (a.branches for a in row.strategies.values() if a.widens_pilot(mt, judge)),
                default=0,
            )
            slots = max(options.pilot, min(widest - options.pilot, MAX_LIVE_BRANCHES))
            opening = (
                f"budget {budget:,} tokens: following {session.name}'s tuned policy (its "
                f"{row.budget} tok/q row); {options.pilot} pilot branch(es) of up to {mt} "
                "tokens judge the difficulty" + (f", scored by {judge}" if judge else "")
            )
            verifier = make_verifier(judge, session) if judge else None
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
        try:
            logprobs = options.top_logprobs if verifier and verifier.needs_logprobs else 0
            run = ParallelRun(
                self.info.name,
                question,
                session,
                emit,
                max_tokens=mt,
                max_branches=slots,
                multiple_choice=options.multiple_choice,
                logprobs=logprobs,
            )
        except BaseException:
            if verifier is not None:
                verifier.close()
            raise
        state = RunState(run, budget)
        scoring = ScoringPolicy(verifier, question) if verifier is not None else None
        plan: Plan | None = None
        choice: Choice | None = None
        try:
            emit(Note(opening, "plan"))
            sampling = options.sampling or session.sampling
            for _ in range(options.pilot):
                b = run.add(sampling.with_seed(options.seed + len(run.engine.branches)), "pilot")
                state.phases["pilot"].append(b.id)
            try:
                run.drive(policy=scoring)
                pilots = state.phases["pilot"]
                answers = [run.answers.get(i) for i in pilots]
                if not run.interrupted and policy is not None and row is not None:
                    from reasoncli.tune.difficulty import Pilot
                    from reasoncli.tune.follow import choose

                    tokens = [run.engine.branches[i].n_tokens for i in pilots]
                    scores = [run.scores.get(i) for i in pilots] if scoring else None
                    pilot = Pilot(answers, tokens, mt, scores)
                    choice = choose(policy, row, pilot, _seen(answers, scores))
                    emit(Note(choice.reason, "plan"))
                    self._follow_choice(
                        choice, question, session, options, sampling, state, scoring
                    )
                elif not run.interrupted:
                    plan = plan_after_pilot(answers, budget - state.spent(), mt, self.thresholds)
                    emit(Note(plan.reason, "plan"))
                    self._follow(plan, question, session, options, sampling, state)
            except KeyboardInterrupt:  # between phases; each phase catches its own
                run.interrupted = True
            if verifier is not None:
                state.verifier_tokens = verifier.tokens
            return self._result(plan, options, state, choice, skipped)
        finally:
            run.close()
            if verifier is not None:
                verifier.close()

    # -- phases -----------------------------------------------------------------------------
    def _follow_choice(
        self,
        choice: Choice,
        question: str,
        session: ModelSession,
        options: StrategyOptions,
        sampling: Sampling,
        state: RunState,
        scoring: ScoringPolicy | None = None,
    ) -> None:
        """Run what the policy chose: widen the pilot's vote (or its scored best-of-n) to its
        branches, or run another strategy after the pilot."""
        from reasoncli.tune.follow import options_for

        action, run = choice.action, state.run
        judge = scoring.verifier.name if scoring is not None else None
        if not action.widens_pilot(options.max_tokens, judge):
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
        judged = scoring if action.strategy == "best-of-n" else None  # scores the widening too
        if extra <= 0:
            state.stop = f"policy, bin {choice.bin}: answering from the pilot"
        else:
            free_pilot_slots(run)
            for _ in range(extra):
                state.queue_widening(sampling, options.seed)
            drive_widening(state, ScoredAllAtOnce(judged) if judged else AllAtOnce())
        if judged is not None:  # the pick over every branch, pilots first as they finished
            ids = list(run.finish_order)
            answers = [run.answers[i] for i in ids]
            scores = [run.scores.get(i, math.nan) for i in ids]
            vote = pick_vote(answers, scores, weighted=action.pick == "weighted")
            state.pick = (vote, ids)
            run.emit_vote(None, vote)

    def _follow(
        self,
        plan: Plan,
        question: str,
        session: ModelSession,
        options: StrategyOptions,
        sampling: Sampling,
        state: RunState,
    ) -> None:
        run = state.run
        if plan.path == "easy":
            state.stop = f"easy: {plan.votes}/{plan.pilots} pilots agree"
            return
        if plan.widen_tokens >= options.max_tokens:
            limit = state.spent() + plan.widen_tokens
            settled = widen(state, limit, stop_rule(options), sampling, options.seed)
            if settled or run.interrupted:
                state.stop = settled
                return
        if plan.path == "hard" and plan.rounds_per_chain > 0:
            chains = self.thresholds.hard_max_chains
            revise(state, question, session, options, sampling, plan.rounds_per_chain, chains)

    # -- result -----------------------------------------------------------------------------
    def _result(
        self,
        plan: Plan | None,
        options: StrategyOptions,
        state: RunState,
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
        answers, ids = state.answers()
        vote = majority_vote(answers)
        if state.pick is not None:  # a scored best-of-n that widened the pilot: its pick
            vote, ids = state.pick
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
    def _merge(
        builder: ResultBuilder, state: RunState
    ) -> tuple[str | None, float, list[VoteGroup]]:
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
        self, plan: Plan | None, state: RunState, branches: list[BranchResult]
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
            # what a judge read: the pilots' scoring and the policy's strategy's own judge
            "verifier_tokens": state.verifier_tokens
            + (int(state.inner.details.get("verifier_tokens", 0)) if state.inner else 0),
            "inner": state.inner.details if state.inner else None,
        }
