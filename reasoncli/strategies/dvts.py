"""`dvts`: diverse verifier tree search (search-and-learn's DVTS).

The N = `--branches` candidates are split into N/M independent subtrees (M = `--beam-width`).
Each step, every subtree keeps only its single best-scoring child and forks it into M new
children, so each subtree is a greedy walk on the verifier while the subtrees stay apart:
diversity that plain beam search loses when one prefix wins every selection. A subtree ends
when its best child has finished, giving one leaf per subtree.

The answer is a vote over the leaves weighted by their aggregated scores (search-and-learn's
"weighted" selection): agreeing subtrees pool their scores, and with all answers different it
is simply the best-scoring leaf, which is reported as well.
"""

from __future__ import annotations

from typing import ClassVar

from reasoncli.results import Result
from reasoncli.strategies.base import Kind, StrategyInfo, StrategyOptions, register
from reasoncli.strategies.search import Node, SearchRun, SearchStrategy


@register
class Dvts(SearchStrategy):
    info: ClassVar[StrategyInfo] = StrategyInfo(
        name="dvts",
        kind=Kind.SEARCH,
        summary="Diverse verifier tree search: N/M greedy subtrees, weighted vote over leaves.",
        continues=True,
    )

    def _search(self, run: SearchRun, options: StrategyOptions) -> None:
        trees, width = options.branches // options.beam_width, options.beam_width
        labels = [f"tree {t + 1} step 1" for t in range(trees) for _ in range(width)]
        first = run.start(labels)
        groups = [(t, first[t * width : (t + 1) * width]) for t in range(trees)]
        while groups:
            step = groups[0][1][0].step
            nodes = [node for _, group in groups for node in group]
            run.decode_step(nodes)
            run.score(nodes)
            survivors: list[tuple[int, Node]] = []
            kept: list[Node] = []
            for tree, group in groups:
                best, *rest = run.ranked(group)
                for node in rest:
                    run.prune(node)
                kept.append(best)
                if best.leaf_reason:
                    run.finish_leaf(best)
                else:
                    run.keep(best)
                    survivors.append((tree, best))
            run.note_step(step, nodes, kept)
            if run.leaves:
                run.emit_vote(total=trees, weighted=True)
            groups = [
                (tree, run.expand(best, width, label=f"tree {tree + 1} step {step + 1}"))
                for tree, best in survivors
            ]

    def _result(self, run: SearchRun, options: StrategyOptions) -> Result:
        weighted = run.vote(weighted=True)
        plain = run.vote()
        best = run.ranked(run.leaves)[0] if run.leaves else None
        return run.result(
            answer=weighted.answer,
            share=weighted.share,
            vote=weighted,
            details={
                "selection": "score-weighted vote over leaves",
                "subtrees": options.branches // options.beam_width,
                "expansions": options.beam_width,
                "best_leaf": best.id if best else None,
                "best_leaf_answer": best.answer if best else None,
                "vote": {"answer": plain.answer, "share": round(plain.share, 4)},
            },
        )
