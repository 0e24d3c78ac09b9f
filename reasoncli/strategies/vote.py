"""`vote`: self-consistency. Sample N chains of thought, return the most common answer.

With `--early-stop`, branches are launched a few at a time and a stop rule (`beta`:
Adaptive-Consistency's Beta posterior, `esc`: a window of agreeing answers) is checked as each
one finishes; once the outcome is settled the running branches are cut and no more start.
"""

from __future__ import annotations

from typing import ClassVar

from reasoncli.engine.protocols import ModelSession
from reasoncli.events import EventSink
from reasoncli.results import Result
from reasoncli.strategies.base import BaseStrategy, Kind, StrategyInfo, StrategyOptions, register
from reasoncli.strategies.early_stop import EarlyStop, check_early_stop
from reasoncli.strategies.parallel import ParallelRun, VotePolicy


def run_vote(
    strategy: str,
    question: str,
    session: ModelSession,
    options: StrategyOptions,
    emit: EventSink,
    *,
    early: EarlyStop | None = None,
    in_flight: int | None = None,
) -> Result:
    """Self-consistency over `options.branches` branches, branch i sampled with seed + i.

    `in_flight` caps how many branches decode at once (default: all, or the early-stop
    wave). Benchmarks pass the early-stop wave size without a rule to get the full vote that
    an early-stopped run is an exact prefix of.
    """
    run = ParallelRun.of(strategy, question, session, options, emit)
    try:
        run.queue_seeded(options)
        run.drive(policy=VotePolicy(early, in_flight))
        details = {"early_stop": early.details(run)} if early else {}
        return run.result(run.vote(), expect=options.expect, details=details)
    finally:
        run.close()


@register
class Vote(BaseStrategy):
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="vote",
        kind=Kind.PARALLEL,
        summary="Self-consistency: N sampled chains of thought, majority vote over answers.",
    )

    def _check_own(self, options: StrategyOptions) -> None:
        check_early_stop(options)

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        return run_vote(
            self.info.name, question, session, options, emit, early=EarlyStop.from_options(options)
        )
