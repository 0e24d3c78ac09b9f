"""`vote`: self-consistency. Sample N chains of thought, return the most common answer."""

from __future__ import annotations

from typing import ClassVar

from reasoncli.events import EventSink
from reasoncli.results import Result
from reasoncli.session import Session
from reasoncli.strategies.base import Kind, StrategyInfo, StrategyOptions, register
from reasoncli.strategies.parallel import ParallelRun


@register
class Vote:
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="vote",
        kind=Kind.PARALLEL,
        summary="Self-consistency: N sampled chains of thought, majority vote over answers.",
        options=("branches", "max_tokens", "seed", "temperature", "expect"),
    )

    def check(self, options: StrategyOptions) -> None:
        options.check()

    def run(
        self, question: str, session: Session, options: StrategyOptions, emit: EventSink
    ) -> Result:
        sampling = options.sampling or session.sampling
        run = ParallelRun(
            self.info.name,
            question,
            session,
            emit,
            max_tokens=options.max_tokens,
            max_branches=options.branches,
            multiple_choice=options.multiple_choice,
        )
        try:
            for i in range(options.branches):
                run.add(sampling.with_seed(options.seed + i))
            run.drive()
            return run.result(run.vote(), expect=options.expect)
        finally:
            run.close()
