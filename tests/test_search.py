"""Step-level search (`beam`, `dvts`): score maths, option checks, and the search mechanics
(forks, steps, slot reuse, events, determinism) on the tiny random model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_run import one_error, reason, run_cli

from reasoncli.engine.branches import Branch
from reasoncli.engine.sampling import Sampling
from reasoncli.errors import UsageError
from reasoncli.events import (
    BranchFinished,
    BranchStarted,
    BranchText,
    Event,
    Note,
    RunStarted,
    VoteUpdated,
)
from reasoncli.results import Result
from reasoncli.solution_steps import ends_step, step_prefixes
from reasoncli.strategies.base import StrategyOptions, get_strategy
from reasoncli.strategies.search import (
    ANSWERED,
    EXPANDED,
    PRUNED,
    Node,
    aggregate_scores,
    share_of,
)
from reasoncli.voting import majority_vote

SEARCHES = ("beam", "dvts")
QUESTION = "What is 2+2?"


# -- pure maths and rules --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scores", "how", "expected"),
    [
        ([0.9, 0.5, 0.7], "last", 0.7),
        ([0.9, 0.5, 0.7], "min", 0.5),
        ([0.9, 0.5, 0.7], "prod", 0.9 * 0.5 * 0.7),
        ([0.4], "last", 0.4),
        ([0.4], "min", 0.4),
        ([0.4], "prod", 0.4),
        ([], "prod", 0.0),
        ([0.8, math.nan], "last", 0.0),  # a NaN step score counts as 0, never as a win
        ([0.8, math.nan, 0.9], "min", 0.0),
        ([math.inf, 0.5], "prod", 0.0),
    ],
)
def test_aggregate_scores(scores: list[float], how: str, expected: float) -> None:
    assert aggregate_scores(scores, how) == pytest.approx(expected)


def test_aggregate_orders_paths_differently() -> None:
    """A path with one weak step wins under `last` but loses under `min` and `prod`."""
    steady, recovered = [0.7, 0.7, 0.7], [0.9, 0.1, 0.95]
    assert aggregate_scores(recovered, "last") > aggregate_scores(steady, "last")
    assert aggregate_scores(recovered, "min") < aggregate_scores(steady, "min")
    assert aggregate_scores(recovered, "prod") < aggregate_scores(steady, "prod")
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate_scores([0.5], "mean")


@pytest.mark.parametrize(
    ("written", "ends"),
    [
        ("First, add.\n", True),
        ("First, add.\n\n", True),
        ("First, add.\nThen", True),
        ("First, add.", False),
        ("\n\n", False),  # leading line breaks belong to the previous step's end
        ("\n\nFirst", False),
        ("", False),
    ],
)
def test_a_step_ends_at_a_line_end_after_content(written: str, ends: bool) -> None:
    """Search cuts steps where PRM training does: every step prefix it scores is one the
    PRM saw in training (`step_prefixes`)."""
    assert ends_step(written) is ends
    if ends:
        first = written.lstrip().split("\n", 1)[0]
        assert step_prefixes(written)[0] == written[: written.index(first) + len(first)]


def _node(text: str, finish: str | None, at_break: bool) -> Node:
    branch = Branch(id=0, seq=-1, sampling=Sampling(), max_tokens=99, text=text)
    branch.finish_reason = finish
    return Node(branch, step=1, label="", inherited=0, ended_at_break=at_break)


@pytest.mark.parametrize(
    ("text", "finish", "at_break", "reason"),
    [
        ("2 + 2 = 4. The answer is 4.", "stopped", True, ANSWERED),
        ("2 + 2 = 4. The answer is 4.", "stopped", False, None),  # cut by the step budget
        ("2 + 2 = 4.", "stopped", True, None),
        ("anything", "eos", False, "eos"),
        ("anything", "length", False, "length"),
    ],
)
def test_leaf_reason(text: str, finish: str, at_break: bool, reason: str | None) -> None:
    assert _node(text, finish, at_break).leaf_reason == reason


def test_share_of_follows_equivalence_groups() -> None:
    vote = majority_vote(["1/2", "0.5", "3", None])
    assert share_of(vote, 1) == pytest.approx(2 / 3)
    assert share_of(vote, 2) == pytest.approx(1 / 3)
    assert share_of(vote, 3) == 0.0


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"branches": 4, "beam_width": 8}, "larger than --branches"),
        ({"branches": 10, "beam_width": 4}, "multiple of --beam-width"),
        ({"aggregate": "mean"}, "--aggregate"),
        ({"step_tokens": 0}, "--step-tokens"),
        ({"beam_width": 0}, "--beam-width"),
        ({"verifier": "no-such-judge"}, "unknown verifier"),
    ],
)
def test_options_that_do_not_fit_are_usage_errors(
    name: str, changes: dict[str, object], message: str
) -> None:
    options = StrategyOptions(**{"branches": 8, "beam_width": 4, **changes})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=message):
        get_strategy(name).check(options)


@pytest.mark.parametrize("name", SEARCHES)
def test_fitting_options_pass(name: str) -> None:
    for branches, width in ((8, 4), (4, 4), (4, 1), (1, 1)):
        get_strategy(name).check(StrategyOptions(branches=branches, beam_width=width))


# -- mechanics on the tiny model -------------------------------------------------------------


def search(session: object, name: str, **changes: object) -> tuple[Result, list[Event]]:
    events: list[Event] = []
    options = StrategyOptions(
        **{"branches": 8, "beam_width": 2, "step_tokens": 4, "max_tokens": 16, **changes}  # type: ignore[arg-type]
    )
    strategy = get_strategy(name)
    strategy.check(options)
    return strategy.run(QUESTION, session, options, events.append), events  # type: ignore[arg-type]


def by_id(result: Result) -> dict[int, object]:
    return {b.id: b for b in result.branches}


def test_beam_mechanics(session: object) -> None:
    result, events = search(session, "beam")
    d = result.details
    branches = by_id(result)
    n, width = 8, 2

    # Step 1 samples N from the prompt; later steps fork every kept beam, N candidates a step.
    roots = [b for b in result.branches if b.parent is None]
    assert len(roots) == n and all(b.label == "step 1" for b in roots)
    assert d["forks"] == d["candidates"] - n
    assert d["candidates"] == sum(s["candidates"] for s in d["step_log"])
    assert all(s["candidates"] == n for s in d["step_log"])
    assert d["steps"] == len(d["step_log"]) >= 2
    # More candidates than slots: pruned candidates' slots were released and reused.
    assert d["candidates"] > n + 1
    assert d["peak_branches"] <= n + 1

    for b in result.branches:
        assert 0 < b.tokens <= 4  # one step each
        if b.parent is not None:
            parent = branches[b.parent]
            assert parent.finish_reason == EXPANDED
            assert b.text.startswith(parent.text)  # the fork shares the parent's text
            assert b.label == f"step {int(parent.label.split()[1]) + 1}"
    # At most `width` survive each step, and the search ends with `width` leaves.
    for s in d["step_log"]:
        assert len(s["kept"]) <= width
    leaves = [b for b in result.branches if b.finish_reason not in (EXPANDED, PRUNED)]
    assert len(leaves) == d["leaves"] == width
    assert {b.finish_reason for b in leaves} <= {"eos", "length", "stop", ANSWERED}
    assert d["pruned"] == sum(b.finish_reason == PRUNED for b in result.branches)
    assert all(b.score is not None and 0.0 <= b.score <= 1.0 for b in result.branches)
    assert d["best_leaf"] == max(leaves, key=lambda b: (b.score, -b.id)).id

    # Token accounting: each candidate decodes only its own tokens (+1 for an end token); the
    # n roots sample their first tokens from the prompt's logits, without a row of their own.
    assert result.generated_tokens == sum(b.tokens for b in result.branches)
    p = result.prompt_tokens
    extra = d["decoded_tokens"] - p - result.generated_tokens + n
    assert 0 <= extra <= sum(b.finish_reason == "eos" for b in result.branches)
    assert d["prefix_tokens_forked"] == sum(
        _depth_tokens(branches, b.parent) for b in result.branches if b.parent is not None
    )
    assert d["tokens_without_reuse"] == p * d["candidates"] + d["prefix_tokens_forked"] + (
        result.generated_tokens
    )
    assert d["reused_tokens"] == d["tokens_without_reuse"] - d["decoded_tokens"] > 0

    # The same events as every strategy, one start and one end per candidate, with scores.
    assert isinstance(events[0], RunStarted) and events[0].strategy == "beam"
    starts = [e for e in events if isinstance(e, BranchStarted)]
    ends = [e for e in events if isinstance(e, BranchFinished)]
    assert [e.branch for e in starts] == sorted(branches)
    assert sorted(e.branch for e in ends) == sorted(branches)
    assert all(e.parent == branches[e.branch].parent for e in starts)
    assert all(e.score is not None for e in ends)
    assert any(isinstance(e, BranchText) for e in events)
    assert sum(isinstance(e, Note) and e.topic == "step" for e in events) == d["steps"]
    assert any(isinstance(e, VoteUpdated) for e in events)
    assert result.interrupted is False


def _depth_tokens(branches: dict[int, object], branch_id: int) -> int:
    """Tokens on the path from the root to `branch_id`, inclusive."""
    total = 0
    current: int | None = branch_id
    while current is not None:
        total += branches[current].tokens  # type: ignore[attr-defined]
        current = branches[current].parent  # type: ignore[attr-defined]
    return total


def test_min_aggregation_never_rises_along_a_path(session: object) -> None:
    result, _ = search(session, "beam", aggregate="min", branches=4, max_tokens=12)
    branches = by_id(result)
    children = [b for b in result.branches if b.parent is not None]
    assert children
    for b in children:
        assert b.score <= branches[b.parent].score + 1e-9


def test_self_verifier_scores_partial_solutions(session: object) -> None:
    """The judge verifier (P(Yes) from the same model) plugs in like the free one."""
    result, events = search(session, "beam", branches=4, max_tokens=8, verifier="self")
    assert result.details["verifier"] == "self"
    assert result.details["steps"] == 2
    assert all(0.0 <= b.score <= 1.0 for b in result.branches)
    assert len({b.score for b in result.branches}) > 1


def test_same_seed_same_search_other_seed_differs(session: object) -> None:
    def texts(seed: int) -> list[str]:
        result, _ = search(session, "beam", branches=4, max_tokens=8, seed=seed)
        return [b.text for b in result.branches]

    first = texts(3)
    assert texts(3) == first
    assert texts(4) != first


def test_dvts_mechanics(session: object) -> None:
    result, events = search(session, "dvts", branches=8, beam_width=2)
    d = result.details
    branches = by_id(result)
    trees, width = 4, 2
    assert d["subtrees"] == trees and d["peak_branches"] <= 8 + 1
    assert d["candidates"] > 8 + 1
    # Every subtree keeps exactly one child a step and expands it into M children.
    for s in d["step_log"]:
        assert s["candidates"] % width == 0
        assert len(s["kept"]) == s["candidates"] // width
    for b in result.branches:
        if b.parent is not None:
            parent = branches[b.parent]
            assert parent.finish_reason == EXPANDED
            assert b.label.split(" step")[0] == parent.label.split(" step")[0]  # same tree
    siblings: dict[int, int] = {}
    for b in result.branches:
        if b.parent is not None:
            siblings[b.parent] = siblings.get(b.parent, 0) + 1
    assert set(siblings.values()) == {width}
    leaves = [b for b in result.branches if b.finish_reason not in (EXPANDED, PRUNED)]
    assert len(leaves) == d["leaves"] == trees
    assert sorted(b.label.split(" step")[0] for b in leaves) == [
        f"tree {t}" for t in range(1, trees + 1)
    ]
    # The answer is the score-weighted vote over leaves.
    assert sum(v.count for v in result.votes) == sum(b.answer is not None for b in leaves)
    assert d["selection"] == "score-weighted vote over leaves"
    assert isinstance(events[0], RunStarted) and events[0].strategy == "dvts"


def test_ctrl_c_returns_the_partial_search(session: object) -> None:
    options = StrategyOptions(branches=4, beam_width=2, step_tokens=4, max_tokens=32)
    seen = 0

    def emit(event: Event) -> None:
        nonlocal seen
        if isinstance(event, Note) and event.topic == "step":
            seen += 1
            if seen == 2:
                raise KeyboardInterrupt

    result = get_strategy("beam").run(QUESTION, session, options, emit)  # type: ignore[arg-type]
    assert result.interrupted
    assert result.details["steps"] == 2
    assert len(result.branches) == result.details["candidates"]


# -- the CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SEARCHES)
def test_cli_json(name: str, tiny_gguf: Path, threads: int) -> None:
    proc = run_cli(
        "ask", QUESTION, "-m", str(tiny_gguf), "-s", name, "-n", "4", "--beam-width", "2",
        "--step-tokens", "4", "--max-tokens", "12", "--aggregate", "prod",
        "--threads", str(threads), "--expect", "4", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = json.loads(proc.stdout)
    assert data["strategy"] == name and data["model"] == "tiny"
    d = data["details"]
    for key in ("steps", "candidates", "forks", "decoded_tokens", "reused_tokens", "verifier"):
        assert key in d
    assert d["aggregate"] == "prod" and d["verifier"] == "confidence"
    assert len(data["branches"]) == d["candidates"]
    assert data["generated_tokens"] == sum(b["tokens"] for b in data["branches"])
    leaves = [b for b in data["branches"] if b["finish_reason"] not in (EXPANDED, PRUNED)]
    assert leaves and all(b["reward"] is not None for b in leaves)
    assert all(b["score"] is not None and b["label"] for b in data["branches"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-s", "beam", "-n", "4", "--beam-width", "8"), "larger than --branches"),
        (("-s", "dvts", "-n", "6", "--beam-width", "4"), "multiple of --beam-width"),
        (("-s", "beam", "--aggregate", "mean"), "--aggregate"),
        (("-s", "dvts", "--verifier", "no-such-judge"), "unknown verifier"),
    ],
)
def test_cli_bad_options_exit_2(args: tuple[str, ...], message: str, tiny_gguf: Path) -> None:
    one_error(run_cli("ask", QUESTION, "-m", str(tiny_gguf), *args), 2, message)


@pytest.mark.embedded
@pytest.mark.parametrize("name", SEARCHES)
def test_embedded_search_answers(name: str, threads: int) -> None:
    proc = reason(
        "ask", "What is 3 + 4?", "-s", name, "-n", "4", "--beam-width", "2",
        "--step-tokens", "48", "--max-tokens", "128", "--threads", str(threads), "--json",
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "smollm2-135m"
    assert data["details"]["leaves"] >= 1
    assert data["details"]["reused_tokens"] > 0
    assert any(b["text"].strip() for b in data["branches"])
