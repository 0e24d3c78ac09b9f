"""Early stopping for votes: the `--stop-rule` a vote (and auto's widening) stops by, and
`EarlyStop`, which launches a vote's branches a few at a time while the rule watches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reasoncli.errors import UsageError
from reasoncli.stopping import BetaRule, EscRule, StopRule, beta_leader_probability
from reasoncli.strategies.base import StrategyOptions

if TYPE_CHECKING:
    from reasoncli.strategies.parallel import ParallelRun

__all__ = ["EarlyStop", "check_early_stop", "stop_rule"]


def check_early_stop(options: StrategyOptions) -> None:
    """Reject an `--esc-window` that could never stop the vote (the declared ranges and
    choices of `--stop-rule`, `--esc-window` and `--beta-threshold` are checked with the rest)."""
    window, branches = options.esc_window, options.branches
    if options.early_stop and options.stop_rule == "esc" and window > branches:
        raise UsageError(
            f"--esc-window ({window}) is larger than --branches ({branches}), "
            "so the vote could never stop early"
        )


def stop_rule(options: StrategyOptions) -> StopRule:
    """The `--stop-rule` with its `--esc-window` or `--beta-threshold` (vote's early stop and
    auto's widening both stop by it)."""
    if options.stop_rule == "esc":
        return EscRule(window=options.esc_window)
    return BetaRule(threshold=options.beta_threshold)


@dataclass(frozen=True)
class EarlyStop:
    """A stop rule and the number of branches decoded at once while it watches.

    Starting all N branches together would let them all run to the end before the rule sees
    an answer, so nothing would be saved. Branches are launched a few at a time instead, as
    many as the smallest unanimous vote that could fire the rule: once the rule fires, the
    remaining branches are never started, and only the few in flight are cut short.
    """

    name: str
    rule: StopRule
    in_flight: int

    @classmethod
    def from_options(cls, options: StrategyOptions) -> EarlyStop | None:
        if not options.early_stop:
            return None
        check_early_stop(options)
        branches = options.branches
        rule = stop_rule(options)
        if isinstance(rule, EscRule):
            need = rule.window
        else:
            assert isinstance(rule, BetaRule)
            need = rule.min_samples
            while need < branches and beta_leader_probability(need, 0) < rule.threshold:
                need += 1
        return cls(options.stop_rule, rule, max(1, min(need, branches)))

    def decide(self, run: ParallelRun) -> str | None:
        """The Note for stopping now, from the answers of the branches finished so far."""
        answers = [run.answers[i] for i in run.finish_order]
        why = self.rule.decide(answers)
        if why is None:
            return None
        return f"stopped after {len(answers)}/{run.planned} branches: {why}"

    def details(self, run: ParallelRun) -> dict:
        """What ran, for the JSON: started branch ids, those cut short, those never started."""
        started = [b.id for b in run.engine.branches]
        return {
            "rule": self.name,
            "in_flight": self.in_flight,
            "stopped": run.stop_reason is not None,
            "reason": run.stop_reason,
            "planned": len(started) + run.skipped + len(run.queued),
            "started": started,
            "finished": list(run.finish_order),
            "stopped_branches": [b.id for b in run.engine.branches if b.finish_reason == "stopped"],
            "skipped": run.skipped,
        }
