"""`revise`: sequential self-revision. Each round reads the previous round's attempt and redoes it.

Round 1 answers the question. Round k+1 gets a fresh prompt that holds the question, round k's
attempt and an instruction to review it, fix mistakes and state 'The answer is X.'. The final
answer is the last round's answer (`--final last`) or a vote over the rounds (`--final vote`);
Snell et al. (2024) found revisions sometimes turn a right answer wrong, which the vote hedges.

KV reuse: each round opens a new engine for its own prompt. The previous attempt has to be
read by the model either way; a new prompt decodes it at prompt-processing speed (several times
faster than generating it) and keeps each round's context to one attempt rather than the whole
history, which small models handle better and which works alike for chat and completion
(few-shot) models. Only the question prefix is decoded again each round.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from reasoncli.answers import answers_equivalent
from reasoncli.engine.protocols import EngineSize, ModelSession
from reasoncli.engine.sampling import Sampling
from reasoncli.events import (
    BranchFinished,
    BranchStarted,
    BranchText,
    EventSink,
    Note,
    RunStarted,
    VoteUpdated,
)
from reasoncli.options import FINAL_MODES
from reasoncli.results import BranchResult, Result
from reasoncli.strategies.base import BaseStrategy, Kind, StrategyInfo, StrategyOptions, register
from reasoncli.strategies.builder import Cost, ResultBuilder, vote_groups
from reasoncli.strategies.parallel import branch_answer, split_thinking, vote_event
from reasoncli.strategies.question_run import INTERRUPTED_NOTE
from reasoncli.voting import VoteResult, majority_vote

REVISE_TEMPLATE = (
    "{question}\n\n"
    "Here is a previous attempt at this problem:\n\n"
    "{attempt}\n\n"
    "Review the attempt step by step, fix any mistakes, and finish with a final line of the "
    "form 'The answer is X.' where X is the final answer."
)
EMPTY_ATTEMPT = "(the attempt is empty)"


def revision_question(question: str, attempt: str) -> str:
    """The user message of a revision round: the question, the attempt, the instruction."""
    return REVISE_TEMPLATE.format(question=question, attempt=attempt.strip() or EMPTY_ATTEMPT)


def attempt_text(text: str, tags: tuple[str, str] | None) -> str:
    """What the next round is shown: the visible answer of a `<think>` model, else the text."""
    thinking, visible = split_thinking(text, tags)
    return (visible or thinking or text).strip()


@dataclass
class Round:
    """One revision round as run: its branch (None if Ctrl-C came before it started) and cost."""

    branch: BranchResult | None
    cost: Cost = Cost()
    interrupted: bool = False


def run_round(
    session: ModelSession,
    question: str,
    attempt: str | None,
    *,
    branch_id: int,
    parent: int | None,
    label: str,
    sampling: Sampling,
    max_tokens: int,
    emit: EventSink,
    multiple_choice: bool = False,
) -> Round:
    """Answer `question` (attempt None) or revise `attempt`, in an engine of its own.

    Events carry `branch_id`, so callers (revise, auto) number rounds across engines. Ctrl-C
    returns the partial round with `interrupted=True` instead of raising.
    """
    user = question if attempt is None else revision_question(question, attempt)
    tokens = session.prompt_tokens(session.prompt_text(user))
    out = Round(branch=None)
    started = time.perf_counter()
    prompt_s = 0.0
    engine = None
    b = None
    try:
        engine = session.open_engine(tokens, EngineSize(max_branches=1, max_tokens=max_tokens))
        prompt_s = time.perf_counter() - started
        b = engine.add_branch(sampling, max_tokens, session.stop)
        emit(BranchStarted(branch_id, parent, label))
        for events in engine.run():
            for ev in events:
                if ev.text:
                    emit(BranchText(branch_id, ev.text, b.n_tokens))
    except KeyboardInterrupt:
        out.interrupted = True
        emit(Note(INTERRUPTED_NOTE, "interrupt"))
    finally:
        generate_s = time.perf_counter() - started - prompt_s
        decoded = calls = 0
        if engine is not None:  # the engine's counters, read before it is closed
            decoded, calls = engine.prompt_tokens_decoded, engine.decode_calls
            engine.close()
        out.cost = Cost(len(tokens), prompt_s, generate_s, decoded, calls)
    if b is not None:
        # an interrupted round is unfinished text: no answer, no vote (README)
        answer = (
            None
            if out.interrupted
            else branch_answer(b.text, session.think_tags, multiple_choice, question)
        )
        thinking, _ = split_thinking(b.text, session.think_tags)
        reason = "interrupted" if out.interrupted else b.finish_reason or "stopped"
        out.branch = BranchResult(
            id=branch_id,
            text=b.text,
            answer=answer,
            tokens=b.n_tokens,
            finish_reason=reason,
            parent=parent,
            thinking=thinking,
            label=label,
        )
        if not out.interrupted:
            emit(BranchFinished(branch_id, answer, reason, b.n_tokens))
    return out


def choose_final(answers: Sequence[str | None], final: str) -> tuple[str | None, float, VoteResult]:
    """(answer, share, vote) over the rounds' answers, given oldest first.

    The vote counts the rounds latest first, so a tie goes to the later revision. `last` takes
    the last round that stated an answer; its share is how many answered rounds agree with it.
    """
    if final not in FINAL_MODES:
        raise ValueError(f"final must be one of {FINAL_MODES}, got {final!r}")
    latest_first = list(reversed(answers))
    vote = majority_vote(latest_first)
    if final == "vote" or vote.answer is None:
        return vote.answer, vote.share, vote
    # The latest answered round is its group's first member, so the group is named after it.
    group = min(vote.groups, key=lambda g: min(g.members))
    return group.answer, group.count / vote.valid, vote


@register
class Revise(BaseStrategy):
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="revise",
        kind=Kind.SERIAL,
        summary="Sequential self-revision: each round reviews and fixes the previous attempt.",
    )

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        started = time.perf_counter()
        sampling = options.sampling or session.sampling
        first_prompt = session.prompt_tokens(session.prompt_text(question))
        emit(
            RunStarted(
                self.info.name, session.name, len(first_prompt), options.rounds, options.max_tokens
            )
        )
        rounds: list[Round] = []
        done: list[BranchResult] = []  # rounds that ran to their end, oldest first
        interrupted = False
        for k in range(options.rounds):
            prev = done[-1] if done else None
            r = run_round(
                session,
                question,
                attempt_text(prev.text, session.think_tags) if prev else None,
                branch_id=k,
                parent=prev.id if prev else None,
                label=f"round {k + 1}",
                sampling=sampling.with_seed(options.seed + k),
                max_tokens=options.max_tokens,
                emit=emit,
                multiple_choice=options.multiple_choice,
            )
            rounds.append(r)
            if r.interrupted or r.branch is None:
                interrupted = True
                break
            done.append(r.branch)
            if prev is not None:
                emit(Note(_change_note(k + 1, prev.answer, r.branch.answer), "info"))
            answer, share, vote = choose_final([b.answer for b in done], options.final)
            event = vote_event(vote, len(done), options.rounds)
            emit(event if options.final == "vote" else _with_answer(event, answer, share))
        return self._result(question, session, options, rounds, done, interrupted, started)

    def _result(
        self,
        question: str,
        session: ModelSession,
        options: StrategyOptions,
        rounds: list[Round],
        done: list[BranchResult],
        interrupted: bool,
        started: float,
    ) -> Result:
        answers = [b.answer for b in done]
        answer, share, vote = choose_final(answers, options.final)
        changes = sum(
            1
            for a, b in zip(answers, answers[1:], strict=False)
            if (a is None) != (b is None) or (a and b and not answers_equivalent(a, b))
        )
        builder = ResultBuilder(self.info.name, question, session, started=started)
        for r in rounds:
            builder.add([r.branch] if r.branch is not None else [], r.cost)
        return builder.build(
            answer,
            share,
            vote_groups(vote, [b.id for b in reversed(done)]),
            expect=options.expect,
            interrupted=interrupted,
            details={
                "rounds": options.rounds,
                "completed_rounds": len(done),
                "final": options.final,
                "round_answers": answers,
                "answer_changes": changes,
                "prompt_tokens_per_round": [r.cost.prompt_tokens for r in rounds],
                "kv_reuse": "new engine per round; the attempt is re-read as prompt",
            },
        )


def _change_note(round_no: int, before: str | None, after: str | None) -> str:
    if after is None:
        return f"round {round_no} stated no answer (before: {before or 'none'})"
    if before is not None and answers_equivalent(before, after):
        return f"round {round_no} kept {after}"
    return f"round {round_no} changed {before or 'no answer'} -> {after}"


def _with_answer(event: VoteUpdated, answer: str | None, share: float) -> VoteUpdated:
    """The tally event, showing the `last` answer as the leader instead of the vote's winner."""
    return replace(event, answer=answer, share=share)
