"""Shared machinery for strategies that sample many branches of one prompt and combine them.

`ParallelRun` owns the loop: start branches (all at once, or queued and launched a few at a
time), step the engine, stream text, track DeepConf token confidence, extract each finished
branch's answer, keep the vote tally current, and stop on Ctrl-C with what it has.

Strategies steer the loop with a `Policy`:

- `launch`: how many queued branches may start now (waves for early stopping, warm-up first);
- `watch`: after each token of a live branch, may `cut()` it (online DeepConf);
- `score`: scores for the branches that finished in one step, batched (verifiers);
- `finished`: bookkeeping after a branch's answer is recorded (calibration);
- `should_stop`: a reason to end the whole run now (early stopping);
- `weights`: one weight per finished branch, in finish order (confidence, verifier scores).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reasoncli.answers import extract_answer
from reasoncli.confidence import SlidingWindow, token_confidence
from reasoncli.engine.branches import FAILED, Branch
from reasoncli.engine.protocols import Engine, EngineSize, ModelSession
from reasoncli.engine.sampling import Sampling
from reasoncli.events import (
    BranchFinished,
    BranchStarted,
    BranchText,
    EventSink,
    Note,
    RunStarted,
    TallyGroup,
    VoteUpdated,
)
from reasoncli.results import BranchResult, Result
from reasoncli.strategies.base import StrategyOptions
from reasoncli.strategies.builder import Cost, vote_groups
from reasoncli.strategies.early_stop import EarlyStop
from reasoncli.strategies.question_run import QuestionRun
from reasoncli.voting import VoteResult, majority_vote

WeightHook = Callable[["ParallelRun"], "Sequence[float] | None"]

# The finish reason of a branch that an online confidence rule ended (it does not vote).
LOW_CONFIDENCE = "low_confidence"


def split_thinking(text: str, tags: tuple[str, str] | None) -> tuple[str | None, str]:
    """Separate a `<think>` trace from the answer text that follows it."""
    if not tags:
        return None, text
    open_tag, close_tag = tags
    if close_tag in text:
        head, _, tail = text.partition(close_tag)
        return head.replace(open_tag, "", 1).strip(), tail.strip()
    if open_tag in text:  # still thinking when it stopped
        return text.split(open_tag, 1)[1].strip(), ""
    return None, text


def branch_answer(
    text: str, tags: tuple[str, str] | None, multiple_choice: bool, question: str | None = None
) -> str | None:
    """The branch's answer; given the question, a yes/no question gets Yes or No."""
    thinking, visible = split_thinking(text, tags)
    answer = (
        extract_answer(visible, multiple_choice=multiple_choice, question=question)
        if visible
        else None
    )
    if answer is None and thinking:
        answer = extract_answer(thinking, multiple_choice=multiple_choice, question=question)
    return answer


def vote_event(vote: VoteResult, finished: int, total: int) -> VoteUpdated:
    groups = tuple(TallyGroup(g.answer, g.count, g.weight) for g in vote.groups)
    return VoteUpdated(
        answer=vote.answer, share=vote.share, groups=groups, finished=finished, total=total
    )


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: a missing confidence is null."""
    return value if value is not None and math.isfinite(value) else None


class Policy:
    """Hooks that steer `ParallelRun.drive`; every default leaves the plain vote unchanged."""

    def launch(self, run: ParallelRun) -> int:
        """How many queued branches to start now (the run never stalls with none live)."""
        return len(run.queued)

    def watch(self, run: ParallelRun, branch: Branch) -> None:
        """Called after each token of a still-running branch; may `run.cut()` it."""

    def score(self, run: ParallelRun, branches: Sequence[Branch]) -> Mapping[int, float]:
        """Scores by branch id for branches that finished in the same step (one batch)."""
        return {}

    def finished(self, run: ParallelRun, branch: Branch) -> None:
        """Called once a finished branch's answer is recorded, before `should_stop`."""

    def should_stop(self, run: ParallelRun) -> str | None:
        """A human-readable reason to stop every branch now, or None to go on."""
        return None

    def weights(self, run: ParallelRun) -> Sequence[float] | None:
        """Vote weights aligned with `run.finish_order`; None weighs every branch 1."""
        return None


@dataclass(frozen=True)
class _Queued:
    sampling: Sampling
    label: str
    extra_stop: tuple[str, ...]


class ParallelRun(QuestionRun):
    """N sampled branches of one question, combined by a (weighted) vote.

    Branch ids are creation order, and queued branches start in queue order, so branch i is
    the i-th `add()`/`queue()` call whatever the launch schedule.
    """

    def __init__(
        self,
        strategy: str,
        question: str,
        session: ModelSession,
        emit: EventSink,
        *,
        max_tokens: int,
        max_branches: int,
        multiple_choice: bool = False,
        logprobs: int = 0,
        slack_tokens: int = 64,
        window: int = 128,
    ) -> None:
        super().__init__(strategy, question, session, emit)
        self.max_tokens = max_tokens
        self.multiple_choice = multiple_choice
        self.window = window
        self._open_engine(
            EngineSize(
                max_branches=max_branches,
                max_tokens=max_tokens,
                logprobs=logprobs,
                slack_tokens=slack_tokens,
            )
        )
        self.answers: dict[int, str | None] = {}
        self.finish_order: list[int] = []
        self.scores: dict[int, float] = {}
        self.queued: deque[_Queued] = deque()
        self.skipped = 0  # queued branches never started because the run stopped early
        self.steps = 0  # engine steps so far
        self.interrupted = False
        self.stop_reason: str | None = None
        self._windows: dict[int, SlidingWindow] = {}
        self._seen: dict[int, int] = {}  # log-probabilities already fed to each window
        emit(RunStarted(strategy, session.name, self.prompt_tokens, max_branches, max_tokens))

    @classmethod
    def of(
        cls,
        strategy: str,
        question: str,
        session: ModelSession,
        options: StrategyOptions,
        emit: EventSink,
        *,
        max_branches: int | None = None,
        logprobs: int = 0,
        slack_tokens: int = 64,
        window: int = 128,
    ) -> ParallelRun:
        """The run of a strategy's `options`: up to `options.branches` branches at once (or
        `max_branches`) of `options.max_tokens` each, answers read as `options.multiple_choice`
        says."""
        return cls(
            strategy,
            question,
            session,
            emit,
            max_tokens=options.max_tokens,
            max_branches=options.branches if max_branches is None else max_branches,
            multiple_choice=options.multiple_choice,
            logprobs=logprobs,
            slack_tokens=slack_tokens,
            window=window,
        )

    # -- branch lifecycle -------------------------------------------------------------------
    @property
    def planned(self) -> int:
        """Branches started plus those still queued."""
        return len(self.engine.branches) + len(self.queued)

    def add(self, sampling: Sampling, label: str = "", extra_stop: tuple[str, ...] = ()) -> Branch:
        """Start a branch now."""
        b = self.engine.add_branch(sampling, self.max_tokens, self.session.stop + extra_stop)
        self.emit(BranchStarted(b.id, None, label))
        return b

    def queue(self, sampling: Sampling, label: str = "", extra_stop: tuple[str, ...] = ()) -> None:
        """Plan a branch that `drive` starts when the policy's `launch` lets it."""
        self.queued.append(_Queued(sampling, label, extra_stop))

    def queue_seeded(self, options: StrategyOptions) -> None:
        """Plan `options.branches` branches of the options' sampling (else the session's),
        branch i sampled with seed + i."""
        sampling = options.sampling or self.session.sampling
        for i in range(options.branches):
            self.queue(sampling.with_seed(options.seed + i))

    def finished(self) -> list[Branch]:
        return [self.engine.branches[i] for i in self.finish_order]

    def answer_of(self, b: Branch) -> str | None:
        """The answer a finished branch gave (tests override this to script answers)."""
        if b.finish_reason == FAILED:
            return None
        return branch_answer(b.text, self.session.think_tags, self.multiple_choice, self.question)

    def on_finish(self, b: Branch, score: float | None = None) -> None:
        """Record a branch that ended on its own: its answer joins the vote."""
        answer = self.answer_of(b)
        self.answers[b.id] = answer
        self.finish_order.append(b.id)
        if score is not None:
            self.scores[b.id] = score
        self.emit(BranchFinished(b.id, answer, b.finish_reason or "stopped", b.n_tokens, score))
        if error := self.engine.errors.get(b.id):
            self.emit(Note(f"branch {b.id} failed: {error}", "error"))

    def cut(self, b: Branch, reason: str, message: str, topic: str = "early_stop") -> None:
        """End one running branch early; it gets no answer and does not vote."""
        self.engine.finish(b, reason)
        self.answers[b.id] = None
        self.emit(BranchFinished(b.id, None, reason, b.n_tokens))
        self.emit(Note(message, topic))

    # -- confidence -------------------------------------------------------------------------
    def _track(self, b: Branch) -> None:
        """Feed new top-k log-probabilities into the branch's sliding confidence window."""
        if not self.engine.top_logprobs:
            return
        window = self._windows.get(b.id)
        if window is None:
            window = self._windows[b.id] = SlidingWindow(self.window)
        for lp in b.logprobs[self._seen.get(b.id, 0) :]:
            window.push(token_confidence(lp.top_logprobs))
        self._seen[b.id] = len(b.logprobs)

    def window_confidence(self, branch_id: int) -> tuple[float, bool]:
        """The current window mean and whether the window is full (NaN before any token)."""
        window = self._windows.get(branch_id)
        return (window.mean, window.full) if window else (math.nan, False)

    def confidence(self, branch_id: int) -> float:
        """DeepConf's lowest group confidence of a branch; NaN without log-probabilities."""
        window = self._windows.get(branch_id)
        return window.lowest if window else math.nan

    # -- the loop ---------------------------------------------------------------------------
    def drive(self, policy: Policy | None = None) -> None:
        """Step until every branch ends, a stop rule fires, or the user presses Ctrl-C."""
        policy = policy or Policy()
        engine, emit = self.engine, self.emit
        started = time.perf_counter()
        try:
            while True:
                self._launch(policy)
                if not engine.live:
                    break
                events = engine.step()
                self.steps += 1
                done: list[Branch] = []
                for ev in events:
                    b = ev.branch
                    if ev.text:
                        emit(BranchText(b.id, ev.text, b.n_tokens))
                    self._track(b)
                    if ev.finished:
                        done.append(b)
                    else:
                        policy.watch(self, b)
                if done:
                    self._record(done, policy)
        except KeyboardInterrupt:
            self.interrupt()
        self.generate_s = time.perf_counter() - started

    def _running(self) -> list[tuple[int, int]]:
        return [(b.id, b.n_tokens) for b in self.engine.live]

    def _launch(self, policy: Policy) -> None:
        if not self.queued:
            return
        n = min(policy.launch(self), len(self.queued))
        if n <= 0 and not self.engine.live:
            n = 1  # a policy must not leave the run with nothing to decode
        for _ in range(n):
            q = self.queued.popleft()
            self.add(q.sampling, q.label, q.extra_stop)

    def _record(self, done: list[Branch], policy: Policy) -> None:
        """Answers for branches that finished in one step; all of them count, even when the
        stop rule fires part-way, since their tokens are already spent."""
        scores = policy.score(self, done)
        for b in done:
            self.on_finish(b, scores.get(b.id))
            policy.finished(self, b)
            self.emit_vote(policy.weights)
            if self.stop_reason is None and (reason := policy.should_stop(self)):
                self.stop_early(reason)

    def stop_early(self, reason: str) -> None:
        """Stop every running branch and start no queued one; the Note says why."""
        self.stop_reason = reason
        self.skipped += len(self.queued)
        self.queued.clear()
        for b in self.engine.live:
            self.engine.finish(b, "stopped")
            self.emit(BranchFinished(b.id, None, "stopped", b.n_tokens))
        self.emit(Note(reason, "early_stop"))

    # -- votes ------------------------------------------------------------------------------
    def vote(
        self,
        weights: WeightHook | None = None,
        ids: Sequence[int] | None = None,
    ) -> VoteResult:
        """A vote over `ids` (default: every finished branch, in finish order)."""
        ids = self.finish_order if ids is None else ids
        w = weights(self) if weights else None
        if w is not None and ids is not self.finish_order:
            by_id = dict(zip(self.finish_order, w, strict=True))
            w = [by_id[i] for i in ids]
        return majority_vote([self.answers[i] for i in ids], w)

    def emit_vote(
        self, weights: WeightHook | None, vote: VoteResult | None = None, ids: Sequence[int] = ()
    ) -> None:
        vote = vote or self.vote(weights, ids or None)
        self.emit(vote_event(vote, len(self.finish_order), self.planned))

    # -- result -----------------------------------------------------------------------------
    def branch_results(self, scores: Mapping[int, float] | None = None) -> list[BranchResult]:
        """Every started branch as a result lists it; unfinished ones (Ctrl-C, early stop) as
        they are. Branches that never started are not listed."""
        engine = self.engine
        scores = self.scores if scores is None else scores
        branches: list[BranchResult] = []
        for b in engine.branches:
            thinking, _ = split_thinking(b.text, self.session.think_tags)
            # Only a branch that ended on its own has an answer, the one it voted with: a
            # branch cut by Ctrl-C or an early stop is unfinished text, whose last number
            # is as likely a step as a result (see "Interrupted runs" in the README).
            answer = self.answers.get(b.id)
            branches.append(
                BranchResult(
                    id=b.id,
                    text=b.text,
                    answer=answer,
                    tokens=b.n_tokens,
                    finish_reason=b.finish_reason or "interrupted",
                    parent=b.parent,
                    thinking=thinking,
                    forced_tokens=b.forced_tokens,
                    confidence=finite_or_none(self.confidence(b.id)),
                    score=finite_or_none(scores.get(b.id)),
                    error=engine.errors.get(b.id),
                )
            )
        return branches

    def cost(self) -> Cost:
        """What this run's engine has cost so far."""
        return self._cost(self._generate_s())

    def result(
        self,
        vote: VoteResult,
        *,
        expect: str | None = None,
        scores: Mapping[int, float] | None = None,
        details: dict | None = None,
        members: Sequence[int] | None = None,
    ) -> Result:
        """The run's result (see `branch_results`), answered by `vote`.

        `members` are the branch ids `vote` was taken over, in its order (default: every
        finished branch in finish order).
        """
        builder = self._builder()
        builder.add(self.branch_results(scores), self.cost())
        ids = list(self.finish_order if members is None else members)
        return builder.build(
            vote.answer,
            vote.share,
            vote_groups(vote, ids),
            expect=expect,
            interrupted=self.interrupted,
            stop_reason=self.stop_reason,
            details=_with_requests(details or {}, self.engine),
        )

    def _generate_s(self) -> float:
        """Decoding time: what `drive` measured, or, for strategies that step the engine
        themselves (think), everything since the prompt was decoded."""
        measured = getattr(self, "generate_s", None)
        if measured is not None:
            return measured
        return time.perf_counter() - self.started - self.prompt_s

    def close(self) -> None:
        self.engine.close()


class VotePolicy(Policy):
    """Plain or early-stopped voting: waves of `in_flight` branches while a rule watches."""

    def __init__(self, early: EarlyStop | None = None, in_flight: int | None = None) -> None:
        self.early = early
        self.in_flight = in_flight or (early.in_flight if early else None)

    def launch(self, run: ParallelRun) -> int:
        if self.in_flight is None:
            return len(run.queued)
        return self.in_flight - len(run.engine.live)

    def should_stop(self, run: ParallelRun) -> str | None:
        return self.early.decide(run) if self.early else None


def _with_requests(details: dict[str, Any], engine: Engine) -> dict[str, Any]:
    """A remote engine's request counts (requests, retries, failed) join the details."""
    counts = engine.request_counts()
    return {**details, "requests": counts} if counts is not None else details
