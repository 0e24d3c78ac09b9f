"""The phases `auto` runs after its pilot when no tuned policy decides: widening in the pilot's
engine and revision chains from the best attempts, with the bookkeeping (`RunState`) that lets
every phase count against one budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reasoncli.answers import answers_equivalent
from reasoncli.engine.branches import Branch
from reasoncli.engine.protocols import ModelSession
from reasoncli.engine.sampling import Sampling
from reasoncli.events import Note
from reasoncli.results import Result
from reasoncli.stopping import StopRule
from reasoncli.strategies.auto_plan import best_attempts, settle_wave
from reasoncli.strategies.base import StrategyOptions
from reasoncli.strategies.best_of_n import ScoringPolicy
from reasoncli.strategies.parallel import ParallelRun, Policy, vote_event
from reasoncli.strategies.revise import Round, attempt_text, run_round
from reasoncli.voting import VoteResult, majority_vote


@dataclass
class RunState:
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
    pick: tuple[VoteResult, list[int]] | None = None  # a scored widening's pick, over these ids
    verifier_tokens: int = 0  # what the verifier that scored the pilots (and widening) read

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

    def queue_widening(self, sampling: Sampling, seed: int) -> None:
        """Plan one more widening branch, seeded by its id as every branch is."""
        run = self.run
        run.queue(sampling.with_seed(seed + run.planned), "widen")
        self.phases["widen"].append(run.planned - 1)

    def answers(self) -> tuple[list[str | None], list[int]]:
        """Every finished answer in the order it arrived, and the branch ids it came from."""
        ids = list(self.run.finish_order)
        answers = [self.run.answers[i] for i in ids]
        for r in self.rounds:
            if r.branch is not None and not r.interrupted:
                ids.append(r.branch.id)
                answers.append(r.branch.answer)
        return answers, ids


class Widen(Policy):
    """Widening as a `ParallelRun` policy: queue what the budget pays for, launch it in waves
    (`settle_wave`), stop once the vote settles.

    A branch is queued only while `limit` covers it and every queued or live branch in full,
    so launching never overshoots; tokens a branch leaves unused pay for the next one.
    """

    def __init__(
        self, state: RunState, limit: int, rule: StopRule, sampling: Sampling, seed: int
    ) -> None:
        self.state, self.limit, self.rule = state, limit, rule
        self.sampling, self.seed = sampling, seed
        self._wave = (-1, 1)  # (answers seen, wave size), recomputed when answers change

    def top_up(self, run: ParallelRun) -> None:
        free = self.limit - self.state.committed()
        while (len(run.queued) + 1) * run.max_tokens <= free:
            self.state.queue_widening(self.sampling, self.seed)

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


class AllAtOnce(Policy):
    """A policy's widening: every queued branch starts as soon as a slot is free, no stop rule,
    so the run is the k-branch vote `reason tune` measured."""

    def launch(self, run: ParallelRun) -> int:
        return min(len(run.queued), run.engine.capacity)


class ScoredAllAtOnce(AllAtOnce):
    """A policy's best-of-n widening: as `AllAtOnce`, with every finished branch scored by the
    verifier that scored the pilots, as `best-of-n` scores its own."""

    def __init__(self, scoring: ScoringPolicy) -> None:
        self.scoring = scoring

    def score(self, run: ParallelRun, branches: Sequence[Branch]) -> Mapping[int, float]:
        return self.scoring.score(run, branches)

    def weights(self, run: ParallelRun) -> Sequence[float] | None:
        return self.scoring.weights(run)


def free_pilot_slots(run: ParallelRun) -> None:
    """Release the finished branches' slots for widening; their text stays on the branches."""
    for b in run.engine.branches:
        if b.done:
            run.engine.release(b)


def drive_widening(state: RunState, policy: Policy) -> None:
    """Decode the queued widening in the pilot's engine, its time added to the pilot's, and
    say what it cost; branches still queued when a stop rule fires never started."""
    run = state.run
    before = getattr(run, "generate_s", 0.0)
    run.drive(policy=policy)
    run.generate_s += before
    started = len(run.engine.branches)
    state.phases["widen"] = [i for i in state.phases["widen"] if i < started]
    n = len(state.phases["widen"])
    run.emit(Note(f"widened by {n} branch(es); {state.spent():,} tokens spent", "plan"))


def widen(state: RunState, limit: int, rule: StopRule, sampling: Sampling, seed: int) -> str | None:
    """More branches in the pilot's engine, while `limit` can pay for each one in full.

    Returns the stop rule's reason when the vote settles, else None (budget spent).
    """
    run = state.run
    answers = [run.answers[i] for i in run.finish_order]
    if reason := rule.decide(answers):
        run.emit(Note(f"the pilots already settle the vote: {reason}", "early_stop"))
        return reason
    free_pilot_slots(run)
    policy = Widen(state, limit, rule, sampling, seed)
    policy.top_up(run)
    drive_widening(state, policy)
    return run.stop_reason


def revise(
    state: RunState,
    question: str,
    session: ModelSession,
    options: StrategyOptions,
    sampling: Sampling,
    rounds_per_chain: int,
    max_chains: int,
) -> None:
    """Revision chains from the best attempts, while the budget pays for whole rounds."""
    run, emit, mt = state.run, state.run.emit, options.max_tokens
    finished = [run.engine.branches[i] for i in run.finish_order]
    order = best_attempts(
        [run.answers[b.id] for b in finished], [b.finish_reason or "" for b in finished]
    )
    starts = [finished[i] for i in order]
    next_id = len(run.engine.branches)
    for chain in range(max_chains):
        if not starts or state.spent() + mt > state.budget:
            return
        start = starts[chain % len(starts)]
        prev_id, prev_text, prev_answer = start.id, start.text, run.answers[start.id]
        emit(
            Note(
                f"revision chain {chain + 1}: revising #{start.id} ({prev_answer or 'no answer'})",
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
            answers, _ = state.answers()
            emit(vote_event(majority_vote(answers), len(answers), len(answers)))
            repeated = r.branch.answer is not None and prev_answer is not None
            if repeated and answers_equivalent(r.branch.answer or "", prev_answer or ""):
                break  # the revision confirms its attempt: start the next chain
            prev_id, prev_text, prev_answer = r.branch.id, r.branch.text, r.branch.answer
