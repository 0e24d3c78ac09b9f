"""Shared machinery for step-level search (`beam`, `dvts`): steps, forks, scores, selection.

A *step* is the text a branch writes up to the end of a non-empty line (`solution_steps`, the
rule PRM training cuts solutions by) or `step_tokens` tokens, whichever comes first. After each
step a verifier scores every candidate's partial solution, the step scores along a candidate's
path are aggregated (`last`/`min`/`prod`), and a strategy decides which candidates survive. A
survivor is expanded by forking its engine branch: the children get a copy of its KV cache, so
neither the prompt nor any earlier step is ever decoded twice. Candidates that lose are released
at once, so their sequence slots serve the next step's children and the engine needs only N + 1
slots.

Token counts in the result are per candidate *new* tokens (what it decoded itself, not what it
inherited), so `generated_tokens` is the work done; `details` adds what the same search would
have decoded without KV reuse.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from reasoncli.answers import final_answer_span
from reasoncli.engine.branches import FAILED, Branch
from reasoncli.engine.protocols import EngineSize, ModelSession
from reasoncli.engine.sampling import Sampling
from reasoncli.errors import UsageError
from reasoncli.events import (
    BranchFinished,
    BranchStarted,
    BranchText,
    EventSink,
    Note,
    RunStarted,
)
from reasoncli.results import BranchResult, Result
from reasoncli.solution_steps import ends_step
from reasoncli.strategies.base import BaseStrategy, StrategyOptions
from reasoncli.strategies.builder import vote_groups
from reasoncli.strategies.parallel import branch_answer, split_thinking, vote_event
from reasoncli.strategies.question_run import QuestionRun
from reasoncli.verifiers import (
    Candidate,
    aggregate_scores,
    check_verifier,
    make_verifier,
)
from reasoncli.voting import VoteResult, majority_vote

# How a search candidate ended; the engine's own reasons ("eos", "length", "stop") also appear.
EXPANDED = "expanded"  # survived a step and was forked into children
PRUNED = "pruned"  # lost a selection
ANSWERED = "answer"  # wrote a final-answer statement and ended its step at a line break


def check_search_options(options: StrategyOptions) -> None:
    """Reject options a step-level search cannot honour (UsageError, exit 2)."""
    n, width = options.branches, options.beam_width
    if width > n:
        raise UsageError(f"--beam-width ({width}) is larger than --branches ({n})")
    if n % width:
        raise UsageError(
            f"--branches ({n}) must be a multiple of --beam-width ({width}), "
            f"e.g. --branches {n - n % width or width}"
        )
    check_verifier(options.verifier)


@dataclass(eq=False)
class Node:
    """One candidate in the search tree: an engine branch and the scores along its path."""

    branch: Branch
    step: int
    label: str
    inherited: int  # tokens copied from the parent by forking, not decoded by this candidate
    parent_scores: tuple[float, ...] = ()
    step_score: float | None = None
    score: float = 0.0  # aggregate over parent_scores + (step_score,)
    status: str | None = None  # None while undecided; EXPANDED, PRUNED, or a leaf's reason
    answer: str | None = None
    ended_at_break: bool = False

    @property
    def id(self) -> int:
        return self.branch.id

    @property
    def new_tokens(self) -> int:
        return self.branch.n_tokens - self.inherited

    @property
    def scores(self) -> tuple[float, ...]:
        own = () if self.step_score is None else (self.step_score,)
        return self.parent_scores + own

    @property
    def leaf_reason(self) -> str | None:
        """Why this candidate is a finished solution, or None when it should be expanded."""
        b = self.branch
        if b.finish_reason in ("eos", "length", "stop", FAILED):
            return b.finish_reason
        if self.ended_at_break and final_answer_span(b.text) is not None:
            return ANSWERED
        return None


@dataclass
class SearchStats:
    steps: int = 0
    candidates: int = 0
    forks: int = 0
    pruned: int = 0
    decoded_rows: int = 0  # tokens fed to llama_decode after the prompt
    peak_alive: int = 0
    verify_s: float = 0.0
    step_log: list[dict[str, object]] = field(default_factory=list)


class SearchRun(QuestionRun):
    """One search over one question: the engine, the verifier and the tree of candidates.

    Strategies call `start`, `expand`, `decode_step`, `score`, `keep`/`prune`/`finish_leaf`
    and `result`; the engine is sized for N candidates plus the parent being forked.
    """

    def __init__(
        self,
        strategy: str,
        question: str,
        session: ModelSession,
        options: StrategyOptions,
        emit: EventSink,
    ) -> None:
        super().__init__(strategy, question, session, emit)
        self.options = options
        self.sampling = options.sampling or session.sampling
        self.verifier = make_verifier(options.verifier, session)
        try:
            self._open_engine(
                EngineSize(
                    max_branches=options.branches + 1,
                    max_tokens=options.max_tokens,
                    logprobs=options.top_logprobs if self.verifier.needs_logprobs else 0,
                )
            )
        except BaseException:
            self.verifier.close()
            raise
        self.nodes: list[Node] = []
        self.leaves: list[Node] = []
        self.stats = SearchStats()
        self.interrupted = False
        self.generate_s = 0.0
        emit(
            RunStarted(
                strategy, session.name, self.prompt_tokens, options.branches, options.max_tokens
            )
        )

    # -- growing the tree -------------------------------------------------------------------
    def _seeded(self) -> Sampling:
        """Candidate i samples with seed+i, so a run is reproducible from `--seed`."""
        return self.sampling.with_seed(self.options.seed + self.stats.candidates)

    def _track(self, node: Node) -> Node:
        self.nodes.append(node)
        self.stats.candidates += 1
        self.stats.peak_alive = max(self.stats.peak_alive, self.engine.in_use)
        self.emit(BranchStarted(node.id, node.branch.parent, node.label))
        return node

    def start(self, labels: Sequence[str]) -> list[Node]:
        """The first step: one candidate per label, straight from the shared prompt."""
        nodes = []
        for label in labels:
            b = self.engine.add_branch(self._seeded(), self.options.max_tokens, self.session.stop)
            nodes.append(self._track(Node(b, 1, label, inherited=0)))
        return nodes

    def expand(self, parent: Node, k: int, label: str | None = None) -> list[Node]:
        """Fork `parent` into `k` children that each continue with their own seed, then free
        the parent's slot: the children hold copies of its KV, so it is no longer needed."""
        step = parent.step + 1
        children = []
        for _ in range(k):
            b = self.engine.fork(parent.branch, sampling=self._seeded())
            self.stats.forks += 1
            node = Node(
                b,
                step,
                label or f"step {step}",
                inherited=parent.branch.n_tokens,
                parent_scores=parent.scores,
            )
            children.append(self._track(node))
        self.engine.release(parent.branch)
        return children

    # -- one step ---------------------------------------------------------------------------
    def decode_step(self, nodes: Sequence[Node]) -> None:
        """Decode all `nodes` together until each ends its step (line end, budget, or end)."""
        engine, emit = self.engine, self.emit
        budget = self.options.step_tokens
        starts = {n.id: (len(n.branch.text), n.branch.n_tokens) for n in nodes}
        by_id = {n.id: n for n in nodes}
        while True:
            live = [b for b in engine.live if b.id in by_id]
            if not live:
                break
            self.stats.decoded_rows += sum(b.rows_to_decode for b in engine.live)
            for ev in engine.step():
                b = ev.branch
                node = by_id.get(b.id)
                if node is None:
                    continue
                if ev.text:
                    emit(BranchText(b.id, ev.text, node.new_tokens))
                if b.done:
                    continue
                text_start, token_start = starts[b.id]
                if ends_step(b.text[text_start:]):
                    node.ended_at_break = True
                    engine.finish(b, "stopped")
                elif b.n_tokens - token_start >= budget:
                    engine.finish(b, "stopped")
        self.stats.steps = max(self.stats.steps, max((n.step for n in nodes), default=0))

    def score(self, nodes: Sequence[Node]) -> None:
        """Score each candidate's partial solution and aggregate along its path."""
        if not nodes:
            return
        t0 = time.perf_counter()
        candidates = [Candidate(n.branch.text, tuple(n.branch.logprobs)) for n in nodes]
        scores = self.verifier.score(self.question, candidates)
        self.stats.verify_s += time.perf_counter() - t0
        for node, s in zip(nodes, scores, strict=True):
            node.step_score = float(s) if math.isfinite(s) else 0.0
            node.score = aggregate_scores(node.scores, self.options.aggregate)

    @staticmethod
    def ranked(nodes: Sequence[Node]) -> list[Node]:
        """Best aggregated score first; ties keep creation order, so runs are reproducible."""
        return sorted(nodes, key=lambda n: (-n.score, n.id))

    # -- decisions --------------------------------------------------------------------------
    def _settle(self, node: Node, status: str) -> None:
        node.status = status
        node.answer = (
            None
            if status == FAILED
            else branch_answer(
                node.branch.text,
                self.session.think_tags,
                self.options.multiple_choice,
                self.question,
            )
        )
        self.emit(
            BranchFinished(node.id, node.answer, status, node.new_tokens, round(node.score, 6))
        )

    def prune(self, node: Node) -> None:
        self.stats.pruned += 1
        self._settle(node, PRUNED)
        self.engine.release(node.branch)

    def keep(self, node: Node) -> None:
        """A survivor that will be expanded; its slot is freed once it has been forked."""
        self._settle(node, EXPANDED)

    def finish_leaf(self, node: Node) -> None:
        self._settle(node, node.leaf_reason or "stopped")
        self.leaves.append(node)
        self.engine.release(node.branch)

    def note_step(self, step: int, nodes: Sequence[Node], kept: Sequence[Node]) -> None:
        """A one-line summary of the step's selection, and a vote over the leaves so far."""
        best = self.ranked(nodes)[0] if nodes else None
        self.stats.step_log.append(
            {
                "step": step,
                "candidates": len(nodes),
                "kept": [n.id for n in kept],
                "leaves": len(self.leaves),
                "best_score": round(best.score, 6) if best else None,
            }
        )
        kept_text = ", ".join(f"#{n.id} {n.score:.3f}" for n in kept) or "none"
        self.emit(
            Note(
                f"step {step}: scored {len(nodes)} candidates, kept {kept_text}; "
                f"{len(self.leaves)} finished",
                "step",
            )
        )

    def emit_vote(self, total: int, weighted: bool = False) -> VoteResult:
        vote = self.vote(weighted)
        self.emit(vote_event(vote, len(self.leaves), total))
        return vote

    def vote(self, weighted: bool = False) -> VoteResult:
        """A vote over finished leaves, optionally weighted by their aggregated scores."""
        weights = [n.score for n in self.leaves] if weighted else None
        return majority_vote([n.answer for n in self.leaves], weights)

    def _running(self) -> list[tuple[int, int]]:
        return [(node.id, node.new_tokens) for node in self.nodes if node.status is None]

    # -- result -----------------------------------------------------------------------------
    def result(
        self, answer: str | None, share: float, vote: VoteResult, details: dict[str, object]
    ) -> Result:
        """The common result; leaves carry GRPO rewards when `--expect` was given."""
        branches: list[BranchResult] = []
        for node in self.nodes:
            b = node.branch
            thinking, _ = split_thinking(b.text, self.session.think_tags)
            # a node still running (Ctrl-C) has no answer and is no leaf: it does not vote
            branches.append(
                BranchResult(
                    id=node.id,
                    text=b.text,
                    answer=node.answer,
                    tokens=node.new_tokens,
                    finish_reason=node.status or "interrupted",
                    parent=b.parent,
                    thinking=thinking,
                    forced_tokens=b.forced_tokens,
                    score=round(node.score, 6) if node.step_score is not None else None,
                    label=node.label,
                )
            )
        p = self.prompt_tokens
        without_reuse = sum(p + n.inherited + n.new_tokens for n in self.nodes)
        decoded = p + self.stats.decoded_rows
        s = self.stats
        builder = self._builder()
        builder.add(branches, self._cost(self.generate_s))
        leaves = [n.id for n in self.leaves]
        return builder.build(
            answer,
            share,
            vote_groups(vote, leaves),
            expect=self.options.expect,
            rewarded=set(leaves),
            # a leaf that answered and stopped at a line end ended on its own
            finish_reason=lambda b: "stop" if b.finish_reason == ANSWERED else b.finish_reason,
            interrupted=self.interrupted,
            details={
                **details,
                "verifier": self.verifier.name,
                "aggregate": self.options.aggregate,
                "steps": s.steps,
                "candidates": s.candidates,
                "forks": s.forks,
                "pruned": s.pruned,
                "leaves": len(self.leaves),
                "peak_branches": s.peak_alive,
                "decoded_tokens": decoded,
                "tokens_without_reuse": without_reuse,
                "reused_tokens": without_reuse - decoded,
                "prefix_tokens_forked": sum(n.inherited for n in self.nodes),
                "verify_s": round(s.verify_s, 4),
                "verifier_tokens": self.verifier.tokens,
                "step_log": s.step_log,
            },
        )

    def close(self) -> None:
        try:
            self.engine.close()
        finally:
            self.verifier.close()


def share_of(vote: VoteResult, member: int) -> float:
    """The vote share of the group that voter `member` belongs to (0 when it gave no answer)."""
    total = math.fsum(g.weight for g in vote.groups)
    for g in vote.groups:
        if member in g.members:
            return g.weight / total if total > 0 else 0.0
    return 0.0


class SearchStrategy(BaseStrategy):
    """What `beam` and `dvts` share: option checks and a run's lifecycle (time the search, keep
    what it found on Ctrl-C, free the engine and verifier). A subclass says which candidates
    survive each step (`_search`) and which leaf answers (`_result`)."""

    def _check_own(self, options: StrategyOptions) -> None:
        check_search_options(options)

    def run(
        self, question: str, session: ModelSession, options: StrategyOptions, emit: EventSink
    ) -> Result:
        run = SearchRun(self.info.name, question, session, options, emit)
        try:
            started = time.perf_counter()
            try:
                self._search(run, options)
            except KeyboardInterrupt:
                run.interrupt()
            run.generate_s = time.perf_counter() - started
            return self._result(run, options)
        finally:
            run.close()

    def _search(self, run: SearchRun, options: StrategyOptions) -> None:
        raise NotImplementedError

    def _result(self, run: SearchRun, options: StrategyOptions) -> Result:
        raise NotImplementedError
