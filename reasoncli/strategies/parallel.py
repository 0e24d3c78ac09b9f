"""Shared machinery for strategies that sample many branches of one prompt and combine them.

`ParallelRun` owns the loop: start branches, step the engine, stream text, extract each
finished branch's answer, keep the vote tally current, and stop on Ctrl-C with what it has.
Strategies plug in through `should_stop` (early stopping) and `weights` (confidence, verifier).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from reasoncli.answers import extract_answer
from reasoncli.engine.branches import Branch, BranchEngine
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
from reasoncli.results import BranchResult, Result, Timings, VoteGroup
from reasoncli.rewards import group_advantages, score_branch
from reasoncli.session import Session
from reasoncli.voting import VoteResult, majority_vote


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


def branch_answer(text: str, tags: tuple[str, str] | None, multiple_choice: bool) -> str | None:
    thinking, visible = split_thinking(text, tags)
    answer = extract_answer(visible, multiple_choice=multiple_choice) if visible else None
    if answer is None and thinking:
        answer = extract_answer(thinking, multiple_choice=multiple_choice)
    return answer


def vote_event(vote: VoteResult, finished: int, total: int) -> VoteUpdated:
    groups = tuple(TallyGroup(g.answer, g.count, g.weight) for g in vote.groups)
    return VoteUpdated(
        answer=vote.answer, share=vote.share, groups=groups, finished=finished, total=total
    )


class ParallelRun:
    """N sampled branches of one question, combined by a (weighted) vote."""

    def __init__(
        self,
        strategy: str,
        question: str,
        session: Session,
        emit: EventSink,
        *,
        max_tokens: int,
        max_branches: int,
        multiple_choice: bool = False,
        logprobs: int = 0,
        slack_tokens: int = 64,
    ) -> None:
        self.strategy = strategy
        self.question = question
        self.session = session
        self.emit = emit
        self.max_tokens = max_tokens
        self.multiple_choice = multiple_choice
        self.started = time.perf_counter()
        prompt = session.prompt_tokens(session.prompt_text(question))
        self.prompt_tokens = len(prompt)
        self.engine: BranchEngine = session.open_engine(
            prompt,
            max_branches=max_branches,
            max_tokens=max_tokens,
            logprobs=logprobs,
            slack_tokens=slack_tokens,
        )
        self.prompt_s = time.perf_counter() - self.started
        self.answers: dict[int, str | None] = {}
        self.finish_order: list[int] = []
        self.interrupted = False
        self.stop_reason: str | None = None
        emit(RunStarted(strategy, session.name, len(prompt), max_branches, max_tokens))

    # -- branch lifecycle -------------------------------------------------------------------
    def add(self, sampling: Sampling, label: str = "", extra_stop: tuple[str, ...] = ()) -> Branch:
        b = self.engine.add_branch(sampling, self.max_tokens, self.session.stop + extra_stop)
        self.emit(BranchStarted(b.id, None, label))
        return b

    def finished(self) -> list[Branch]:
        return [self.engine.branches[i] for i in self.finish_order]

    def on_finish(self, b: Branch) -> None:
        answer = branch_answer(b.text, self.session.think_tags, self.multiple_choice)
        self.answers[b.id] = answer
        self.finish_order.append(b.id)
        self.emit(BranchFinished(b.id, answer, b.finish_reason or "stopped", b.n_tokens))

    def drive(
        self,
        should_stop: Callable[[ParallelRun], str | None] | None = None,
        weights: Callable[[ParallelRun], Sequence[float] | None] | None = None,
    ) -> None:
        """Step until every branch ends, a stop rule fires, or the user presses Ctrl-C."""
        engine, emit = self.engine, self.emit
        started = time.perf_counter()
        try:
            while engine.live:
                for ev in engine.step():
                    b = ev.branch
                    if ev.text:
                        emit(BranchText(b.id, ev.text, b.n_tokens))
                    if ev.finished:
                        self.on_finish(b)
                        self.emit_vote(weights)
                        if should_stop and (reason := should_stop(self)):
                            self.stop_early(reason)
                            break
        except KeyboardInterrupt:
            self.interrupted = True
            emit(Note("interrupted: showing what was computed so far", "interrupt"))
        self.generate_s = time.perf_counter() - started

    def stop_early(self, reason: str) -> None:
        self.stop_reason = reason
        for b in self.engine.live:
            self.engine.finish(b, "stopped")
        self.emit(Note(reason, "early_stop"))

    def vote(
        self, weights: Callable[[ParallelRun], Sequence[float] | None] | None = None
    ) -> VoteResult:
        ids = self.finish_order
        w = weights(self) if weights else None
        return majority_vote([self.answers[i] for i in ids], w)

    def emit_vote(self, weights: Callable[[ParallelRun], Sequence[float] | None] | None) -> None:
        self.emit(vote_event(self.vote(weights), len(self.finish_order), len(self.engine.branches)))

    # -- result -----------------------------------------------------------------------------
    def result(
        self,
        vote: VoteResult,
        *,
        expect: str | None = None,
        scores: dict[int, float] | None = None,
        details: dict | None = None,
    ) -> Result:
        """Build the result; unfinished branches (Ctrl-C, early stop) are listed as they are."""
        engine = self.engine
        ids = self.finish_order
        branches: list[BranchResult] = []
        for b in engine.branches:
            thinking, _ = split_thinking(b.text, self.session.think_tags)
            answer = self.answers.get(b.id)
            if b.id not in self.answers:
                answer = branch_answer(b.text, self.session.think_tags, self.multiple_choice)
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
                    score=(scores or {}).get(b.id),
                )
            )
        if expect is not None:
            attach_rewards(branches, expect)
        inverse = dict(enumerate(ids))  # position in the vote -> branch id
        votes = [
            VoteGroup(g.answer, g.count, g.weight, [inverse[m] for m in g.members])
            for g in vote.groups
        ]
        generated = sum(b.n_tokens for b in engine.branches)
        total_s = time.perf_counter() - self.started
        return Result(
            question=self.question,
            strategy=self.strategy,
            model=self.session.name,
            answer=vote.answer,
            share=vote.share,
            votes=votes,
            branches=branches,
            prompt_tokens=self.prompt_tokens,
            generated_tokens=generated,
            timings=Timings(
                load_s=self.session.load_s,
                prompt_s=self.prompt_s,
                generate_s=getattr(self, "generate_s", 0.0),
                total_s=total_s,
            ),
            interrupted=self.interrupted,
            stop_reason=self.stop_reason,
            details=details or {},
        )

    def close(self) -> None:
        self.engine.close()


def attach_rewards(branches: list[BranchResult], expect: str) -> None:
    """GRPO rewards per branch and the group-relative advantage over all of them."""
    rewards = [score_branch(b.text, b.answer, b.finish_reason, expect) for b in branches]
    advantages = group_advantages([r.total for r in rewards])
    for b, r, a in zip(branches, rewards, advantages, strict=True):
        b.reward = {
            "accuracy": r.accuracy,
            "format": r.format,
            "stop": r.stop,
            "total": r.total,
            "advantage": a,
        }
