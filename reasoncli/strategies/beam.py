"""`beam`: step-level beam search over partial solutions, scored by a verifier.

Each step, every live beam is forked into children that write one more step; the verifier scores
the N = `--branches` candidates and the best `--beam-width` survive (search-and-learn's beam
search, with `--beam-width` counting the beams kept). A survivor that has finished (end of text,
budget, or a final-answer statement) is a *leaf* and holds its place; the rest are expanded, the N
candidates of the next step shared evenly among them. The search ends when `--beam-width` leaves
are collected. The answer is the best-scoring leaf that states one; a vote over the leaves is
reported alongside.
"""

from __future__ import annotations

from typing import ClassVar

from reasoncli.results import Result
from reasoncli.strategies.base import Kind, StrategyInfo, StrategyOptions, register
from reasoncli.strategies.search import Node, SearchRun, SearchStrategy, share_of


@register
class Beam(SearchStrategy):
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="beam",
        kind=Kind.SEARCH,
        summary="Step-level beam search: keep the best --beam-width partial solutions per step.",
        continues=True,
    )

    def _search(self, run: SearchRun, options: StrategyOptions) -> None:
        n, width = options.branches, options.beam_width
        frontier = run.start(["step 1"] * n)
        while frontier:
            step = frontier[0].step
            run.decode_step(frontier)
            run.score(frontier)
            ranked = run.ranked(frontier)
            slots = width - len(run.leaves)
            for node in ranked[slots:]:
                run.prune(node)
            active: list[Node] = []
            for node in ranked[:slots]:
                if node.leaf_reason:
                    run.finish_leaf(node)
                else:
                    run.keep(node)
                    active.append(node)
            run.note_step(step, frontier, ranked[:slots])
            if len(run.leaves) > 0:
                run.emit_vote(total=width)
            if len(run.leaves) >= width or not active:
                break
            # Share the step's N candidates among the live beams; the best get any remainder.
            frontier = []
            for i, beam in enumerate(active):
                k = n // len(active) + (1 if i < n % len(active) else 0)
                frontier += run.expand(beam, k)

    def _result(self, run: SearchRun, options: StrategyOptions) -> Result:
        vote = run.vote()
        weighted = run.vote(weighted=True)
        answered = [n for n in run.leaves if n.answer is not None] or run.leaves
        best = run.ranked(answered)[0] if answered else None
        return run.result(
            answer=best.answer if best else None,
            share=share_of(vote, run.leaves.index(best)) if best else 0.0,
            vote=vote,
            details={
                "selection": "best-scoring leaf",
                "beam_width": options.beam_width,
                "expansions": options.branches // options.beam_width,
                "best_leaf": best.id if best else None,
                "vote": {"answer": vote.answer, "share": round(vote.share, 4)},
                "weighted_vote": {"answer": weighted.answer, "share": round(weighted.share, 4)},
            },
        )
