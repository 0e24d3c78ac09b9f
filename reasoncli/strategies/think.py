"""`think`: one chain of thought under a token budget, with s1-style budget forcing.

- When the model ends its thinking before `min_tokens`, the end is suppressed and "Wait" is
  appended, at most `max_waits` times, so it keeps thinking.
- When the thinking budget (`max_tokens`) runs out, the end-of-thinking delimiter (for `<think>`
  models) and `answer_text` ("Final Answer:") are appended so the model answers instead of being
  cut mid-sentence.
"""

from __future__ import annotations

from typing import ClassVar

from reasoncli.engine.branches import Branch
from reasoncli.engine.protocols import ModelSession
from reasoncli.events import BranchText, EventSink, Note
from reasoncli.results import Result
from reasoncli.strategies.base import BaseStrategy, Kind, StrategyInfo, StrategyOptions, register
from reasoncli.strategies.parallel import ParallelRun
from reasoncli.voting import majority_vote


def _thinking_tags(session: ModelSession) -> tuple[str, str] | None:
    """The tags to force with; none when the prompt already closed an empty thought."""
    return None if session.skip_thinking else session.think_tags


@register
class Think(BaseStrategy):
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="think",
        kind=Kind.SERIAL,
        summary="One chain of thought with a thinking budget; budget forcing (s1) via 'Wait'.",
        continues=True,
        one_chain=True,
    )

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        sampling = (options.sampling or session.sampling).with_seed(options.seed)
        tags = _thinking_tags(session)
        wait_cost = (options.max_waits + 1) * (len(options.wait_text) + 8)
        slack = options.answer_tokens + wait_cost + max(32, len(options.answer_text) + 16)
        run = ParallelRun.of(
            self.info.name, question, session, options, emit, max_branches=1, slack_tokens=slack
        )
        try:
            branch = run.add(sampling, extra_stop=(tags[1],) if tags else ())
            waits, forced = self._think(run, branch, options, emit)
            if not run.interrupted:  # an interrupted chain has no answer (README)
                run.on_finish(branch)
            vote = majority_vote([run.answers[i] for i in run.finish_order])
            return run.result(
                vote,
                expect=options.expect,
                details={
                    "waits": waits,
                    "forced_answer": forced,
                    "thinking_tokens": branch.n_tokens,
                },
            )
        finally:
            run.close()

    def _think(
        self, run: ParallelRun, b: Branch, options: StrategyOptions, emit: EventSink
    ) -> tuple[int, bool]:
        """Drive one branch through thinking and answering; returns (waits used, forced?)."""
        engine, session = run.engine, run.session
        tags = _thinking_tags(session)
        close_tag = tags[1] if tags else None
        answer_budget = options.answer_tokens
        waits, forced, answering = 0, False, False
        try:
            while True:
                for events in engine.run():
                    for ev in events:
                        if ev.text:
                            emit(BranchText(b.id, ev.text, b.n_tokens))
                if answering:
                    break
                ended_thinking = b.finish_reason == "eos" or (
                    close_tag is not None and b.stop_hit == close_tag
                )
                if ended_thinking and b.n_tokens < options.min_tokens and waits < options.max_waits:
                    waits += 1
                    sep = "" if b.text[-1:].isspace() else "\n"
                    text = sep + options.wait_text
                    emit(
                        Note(
                            f"thought for only {b.n_tokens} tokens: appended "
                            f"{options.wait_text!r} ({waits}/{options.max_waits})",
                            "budget",
                        )
                    )
                    engine.inject(b, text)
                    emit(BranchText(b.id, text, b.n_tokens, forced=True))
                    continue
                if b.finish_reason == "length":
                    forced = True
                    text = (f"\n{close_tag}" if close_tag else "") + "\n\n" + options.answer_text
                    emit(
                        Note(
                            f"thinking budget of {options.max_tokens} tokens spent: "
                            "forcing the answer",
                            "budget",
                        )
                    )
                    self._answer(run, b, text, answer_budget, stop=("\n\n", *session.stop))
                    answering = True
                    continue
                if close_tag is not None and b.stop_hit == close_tag:
                    self._answer(run, b, close_tag, answer_budget, stop=session.stop)
                    answering = True
                    continue
                break
        except KeyboardInterrupt:
            run.interrupt()
        return waits, forced

    @staticmethod
    def _answer(run: ParallelRun, b: Branch, text: str, budget: int, stop: tuple[str, ...]) -> None:
        run.engine.inject(b, text, max_tokens=b.n_tokens + budget, stop=stop)
        run.emit(BranchText(b.id, text, b.n_tokens, forced=True))
