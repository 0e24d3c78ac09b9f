"""`weighted-vote`: DeepConf (Fu et al. 2025, arXiv 2508.15260), confidence-aware voting.

- Token confidence is minus the mean top-k log-probability; a branch's confidence is its
  lowest sliding-window mean (`--window` tokens), which flags its weakest stretch of reasoning.
- Offline: keep the `--keep-percent` most confident branches and weight their votes by
  confidence.
- Online: the first `--warmup` branches run alone; the threshold that `--keep-percent` of them
  clear is calibrated from them, and every later branch is cut as soon as its window
  confidence drops below it (it does not vote). `--warmup 0` or `--warmup` = `--branches`
  turns the online stop off.
- `--early-stop` adds the vote-level stop rules of `vote`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from reasoncli.confidence import calibrate_threshold
from reasoncli.engine.branches import Branch
from reasoncli.engine.protocols import ModelSession
from reasoncli.errors import UsageError
from reasoncli.events import EventSink, Note
from reasoncli.results import Result
from reasoncli.strategies.base import BaseStrategy, Kind, StrategyInfo, StrategyOptions, register
from reasoncli.strategies.early_stop import EarlyStop, check_early_stop
from reasoncli.strategies.parallel import LOW_CONFIDENCE, ParallelRun, VotePolicy
from reasoncli.voting import VoteResult, majority_vote, top_fraction


class DeepConfPolicy(VotePolicy):
    """Warm-up branches first, then online confidence cuts; votes weighted by confidence."""

    def __init__(self, options: StrategyOptions, early: EarlyStop | None) -> None:
        super().__init__(early)
        self.warmup = options.warmup
        self.keep_percent = options.keep_percent
        self.online = 0 < options.warmup < options.branches
        self.threshold: float | None = None
        self.warmup_ids: list[int] = []
        self.cut_ids: list[int] = []

    @property
    def calibrating(self) -> bool:
        return self.online and self.threshold is None

    def launch(self, run: ParallelRun) -> int:
        allow = len(run.queued)
        if self.calibrating:  # only the warm-up branches until the threshold exists
            allow = self.warmup - len(run.engine.branches)
        if self.in_flight is not None:
            allow = min(allow, self.in_flight - len(run.engine.live))
        return allow

    def finished(self, run: ParallelRun, branch: Branch) -> None:
        if not self.calibrating or len(run.finish_order) < self.warmup:
            return
        self.warmup_ids = run.finish_order[: self.warmup]
        lowest = [run.confidence(i) for i in self.warmup_ids]
        try:
            self.threshold = calibrate_threshold(lowest, self.keep_percent)
        except ValueError:  # no finite confidence at all: nothing to calibrate on
            self.online = False
            run.emit(Note("no usable log-probabilities in the warm-up: online stop off", "plan"))
            return
        run.emit(
            Note(
                f"confidence threshold {self.threshold:.3f} from {self.warmup} warm-up "
                f"branches (keeps ~{self.keep_percent:g}%)",
                "plan",
            )
        )

    def watch(self, run: ParallelRun, branch: Branch) -> None:
        if self.threshold is None:
            return
        mean, full = run.window_confidence(branch.id)
        if full and mean < self.threshold:
            self.cut_ids.append(branch.id)
            run.cut(
                branch,
                LOW_CONFIDENCE,
                f"branch #{branch.id} cut at {branch.n_tokens} tokens: window confidence "
                f"{mean:.3f} < {self.threshold:.3f}",
            )

    def weights(self, run: ParallelRun) -> Sequence[float]:
        return [run.confidence(i) for i in run.finish_order]


def confidence_vote(
    answers: Sequence[str | None], confidences: Sequence[float], keep_percent: float
) -> tuple[VoteResult, list[int]]:
    """DeepConf's offline vote: keep the top `keep_percent`% by confidence, weight by it.

    Returns the vote and the kept positions (in input order). NaN confidences rank last and
    weigh nothing; when no kept branch has a usable weight the kept branches vote 1 each.
    """
    kept = sorted(top_fraction(confidences, keep_percent / 100)) if answers else []
    weights = [confidences[i] for i in kept]
    if not any(math.isfinite(w) and w > 0 for w in weights):
        return majority_vote([answers[i] for i in kept]), kept
    return majority_vote([answers[i] for i in kept], weights), kept


def check_confidence_options(options: StrategyOptions) -> None:
    """What the declared ranges cannot say: the warm-up fits in the branches."""
    if options.warmup > options.branches:
        raise UsageError(
            f"--warmup ({options.warmup}) is larger than --branches ({options.branches})"
        )


@register
class WeightedVote(BaseStrategy):
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="weighted-vote",
        kind=Kind.PARALLEL,
        summary="DeepConf: confidence-weighted vote over the most confident branches; "
        "cuts low-confidence branches online.",
    )

    def _check_own(self, options: StrategyOptions) -> None:
        check_confidence_options(options)
        check_early_stop(options)

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        early = EarlyStop.from_options(options)
        policy = DeepConfPolicy(options, early)
        run = ParallelRun.of(
            self.info.name,
            question,
            session,
            options,
            emit,
            logprobs=options.top_logprobs,
            window=options.window,
        )
        try:
            run.queue_seeded(options)
            run.drive(policy=policy)
            ids = run.finish_order
            vote, kept = confidence_vote(
                [run.answers[i] for i in ids],
                [run.confidence(i) for i in ids],
                options.keep_percent,
            )
            members = [ids[k] for k in kept]
            run.emit_vote(None, vote, members)
            details: dict = {
                "confidence": f"lowest mean of a {options.window}-token window",
                "threshold": policy.threshold,
                "warmup": policy.warmup_ids,
                "kept": members,
                "filtered": [i for i in ids if i not in set(members)],
                "low_confidence": policy.cut_ids,
            }
            if early:
                details["early_stop"] = early.details(run)
            return run.result(vote, expect=options.expect, details=details, members=members)
        finally:
            run.close()
