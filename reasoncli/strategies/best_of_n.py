"""`best-of-n`: sample N branches, let a verifier score each, answer with the best one.

Branches are scored as they finish, those that finish in the same engine step in one batch, so
each `BranchFinished` event carries its score and the live view can show it. `--verifier` picks
the judge (see `reasoncli.verifiers`): `confidence` costs nothing, `self` and another model
decode each solution once more in a judge prompt. A PRM (`prm:NAME`) scores every step prefix
of a solution instead, and `--aggregate` folds those step scores into the branch's score.
`--pick weighted` answers with the verifier-weighted vote instead of the single best branch
(weighted best-of-n: agreement among well-scored branches beats one lucky high score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import ClassVar

from reasoncli.engine.branches import Branch
from reasoncli.engine.protocols import ModelSession
from reasoncli.errors import UsageError
from reasoncli.events import EventSink, Note
from reasoncli.results import Result
from reasoncli.solution_steps import step_prefixes
from reasoncli.strategies.base import BaseStrategy, Kind, StrategyInfo, StrategyOptions, register
from reasoncli.strategies.parallel import ParallelRun, Policy, finite_or_none
from reasoncli.verifiers import (
    Candidate,
    Verifier,
    aggregate_scores,
    check_verifier,
    make_verifier,
)
from reasoncli.voting import VoteResult, majority_vote

TIE = 1e-9


class ScoringPolicy(Policy):
    """Every branch starts at once; finished branches are scored by the verifier in batches.

    A per-step verifier (PRM) gets every step prefix of every branch that finished in this
    engine step in one call; `step_scores` keeps them by branch id, and the branch's score is
    their `aggregate`. A branch with no visible text has no steps and scores 0.
    """

    def __init__(self, verifier: Verifier, question: str, aggregate: str = "last") -> None:
        self.verifier = verifier
        self.question = question
        self.aggregate = aggregate
        self.step_scores: dict[int, list[float]] = {}
        self.read: dict[int, int] = {}  # tokens the verifier read of each branch (its steps)

    def score(self, run: ParallelRun, branches: Sequence[Branch]) -> Mapping[int, float]:
        if not self.verifier.per_step:
            candidates = [Candidate(b.text, tuple(b.logprobs)) for b in branches]
            scores = self.verifier.score(self.question, candidates)
            costs = self.verifier.last_costs
            self.read.update({b.id: c for b, c in zip(branches, costs, strict=True)})
            return {b.id: s for b, s in zip(branches, scores, strict=True)}
        steps = {b.id: step_prefixes(b.text) for b in branches}
        flat = self.verifier.score(
            self.question, [Candidate(p) for b in branches for p in steps[b.id]]
        )
        out: dict[int, float] = {}
        start = 0
        for b in branches:
            n = len(steps[b.id])
            self.step_scores[b.id] = list(flat[start : start + n])
            self.read[b.id] = sum(self.verifier.last_costs[start : start + n])
            start += n
            out[b.id] = aggregate_scores(self.step_scores[b.id], self.aggregate)
        return out

    def branch_tokens(self, ids: Sequence[int]) -> list[int | None]:
        """What the verifier read of each branch of `ids` (None: never scored)."""
        return [self.read.get(i) for i in ids]

    def weights(self, run: ParallelRun) -> Sequence[float]:
        return [run.scores.get(i, 0.0) for i in run.finish_order]


def pick_best(answers: Sequence[str | None], scores: Sequence[float]) -> list[int]:
    """Positions of the best-scoring branches that gave an answer (several on a tie).

    A branch without an answer cannot be the pick, whatever its score; NaN scores lose.
    """
    clean = [s if math.isfinite(s) else -math.inf for s in scores]
    answered = [i for i, a in enumerate(answers) if a is not None and a.strip()]
    if not answered:
        return []
    top = max(clean[i] for i in answered)
    return [i for i in answered if clean[i] >= top - TIE]


def best_of_n_vote(answers: Sequence[str | None], scores: Sequence[float]) -> VoteResult:
    """The best branch's answer (a tie is settled by a vote among the tied branches), with
    the score-weighted tally of all answers for display; `share` is the pick's score share."""
    tally = majority_vote(answers, scores)  # NaN and negative scores weigh nothing
    best = pick_best(answers, scores)
    if not best:
        return replace(tally, answer=None, share=0.0)
    tied = majority_vote([answers[i] for i in best])
    pick = best[tied.groups[0].members[0]]
    group = next(g for g in tally.groups if pick in g.members)
    total = math.fsum(g.weight for g in tally.groups)
    return replace(tally, answer=answers[pick], share=group.weight / total if total > 0 else 0.0)


def pick_vote(answers: Sequence[str | None], scores: Sequence[float], weighted: bool) -> VoteResult:
    """The answer `--pick weighted` (the score-weighted vote) or `--pick best` gives."""
    return majority_vote(answers, scores) if weighted else best_of_n_vote(answers, scores)


@register
class BestOfN(BaseStrategy):
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="best-of-n",
        kind=Kind.PARALLEL,
        summary="N sampled solutions scored by a verifier (confidence, self, another model, "
        "or a trained orm:/prm:); the best one's answer wins, or a score-weighted vote.",
    )

    def _check_own(self, options: StrategyOptions) -> None:
        if options.early_stop:
            raise UsageError("--early-stop applies to vote and weighted-vote, not best-of-n")
        check_verifier(options.verifier)

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        verifier = make_verifier(options.verifier, session)
        try:
            logprobs = options.top_logprobs if verifier.needs_logprobs else 0
            run = ParallelRun.of(
                self.info.name,
                question,
                session,
                options,
                emit,
                logprobs=logprobs,
                window=options.window,
            )
        except BaseException:
            verifier.close()
            raise
        try:
            run.queue_seeded(options)
            policy = ScoringPolicy(verifier, question, options.aggregate)
            run.drive(policy=policy)
            ids = run.finish_order
            answers = [run.answers[i] for i in ids]
            scores = [run.scores.get(i, math.nan) for i in ids]
            weighted = options.pick == "weighted"
            vote = pick_vote(answers, scores, weighted)
            best = [ids[k] for k in pick_best(answers, scores)]
            if weighted:
                emit(
                    Note(
                        f"{verifier.name} verifier: score-weighted vote answers {vote.answer} "
                        f"({vote.share:.0%} of the weight)",
                        "plan",
                    )
                )
            elif best:
                emit(
                    Note(
                        f"{verifier.name} verifier: best branch #{best[0]} "
                        f"(score {run.scores[best[0]]:.3f}) answers {vote.answer}"
                        + (f"; {len(best)} tied, settled by vote" if len(best) > 1 else ""),
                        "plan",
                    )
                )
            run.emit_vote(None, vote)
            every = [b.id for b in run.engine.branches]  # the order of result.branches
            details: dict[str, object] = {
                "verifier": verifier.name,
                "pick": options.pick,
                "aggregate": options.aggregate,
                "best": best,
                "best_score": run.scores.get(best[0]) if best else None,
                "scores": [finite_or_none(run.scores.get(i)) for i in every],
                "verifier_tokens": verifier.tokens,
                # of it, what each branch cost, and the judge prompt they share, read once
                "verifier_branch_tokens": policy.branch_tokens(every),
                "verifier_prompt_tokens": verifier.prompt_tokens,
            }
            if verifier.per_step:  # None for a branch that never finished (Ctrl-C)
                steps = policy.step_scores
                details["step_scores"] = [steps[i] if i in steps else None for i in every]
            return run.result(vote, expect=options.expect, details=details)
        finally:
            run.close()
            verifier.close()
