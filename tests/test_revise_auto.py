"""`revise` (serial self-revision) and `auto` (compute-optimal budget allocation).

The decisions are pure functions tested on constructed answers; the mechanics (rounds, parent
links, widening the pilot engine, the budget, Ctrl-C) run on the tiny random model, whose
answers are scripted where a test needs a particular vote.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from cli_run import Run, one_error, run_cli
from cli_run import reason as run_reason

from reasoncli.errors import UsageError
from reasoncli.events import BranchStarted, BranchText, Event, Note
from reasoncli.results import Result
from reasoncli.stopping import BetaRule, EscRule
from reasoncli.strategies import revise as revise_module
from reasoncli.strategies.auto import Auto
from reasoncli.strategies.auto_plan import (
    EASY_AGREEMENT,
    MEDIUM_AGREEMENT,
    MIN_BRANCH_TOKENS,
    Thresholds,
    best_attempts,
    branch_cap,
    plan_after_pilot,
    settle_wave,
)
from reasoncli.strategies.base import StrategyOptions, get_strategy
from reasoncli.strategies.parallel import ParallelRun
from reasoncli.strategies.revise import Revise, choose_final, revision_question

# -- pure decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "path", "agreement"),
    [
        (["42", "42", "42", "42"], "easy", 1.0),
        (["42", "42", "42", "7"], "easy", 0.75),
        (["42", "42.0", "84/2", None], "easy", 0.75),  # equivalent answers agree
        (["42", "42", "7", "8"], "medium", 0.5),
        (["1", "1", "2", "2"], "medium", 0.5),  # a tie is not agreement
        (["42"], "medium", 1.0),  # one pilot alone is never "easy"
        (["1", "2", "3", "4"], "hard", 0.25),
        (["42", None, None, None], "hard", 0.25),
        ([None, None, None, None], "hard", 0.0),
    ],
)
def test_plan_after_pilot_paths(answers: list[str | None], path: str, agreement: float) -> None:
    plan = plan_after_pilot(answers, budget_left=1000, max_tokens=100)
    assert plan.path == path
    assert plan.agreement == pytest.approx(agreement)
    assert plan.difficulty == pytest.approx(1 - agreement)
    assert path in plan.reason
    if path == "easy":
        assert plan.widen_tokens == plan.revise_tokens == 0
    elif path == "medium":
        assert (plan.widen_tokens, plan.revise_tokens, plan.rounds_per_chain) == (1000, 0, 0)
    else:
        assert (plan.widen_tokens, plan.revise_tokens) == (500, 500)
        assert plan.rounds_per_chain == 2


def test_plan_splits_whole_branches_and_says_when_nothing_is_left() -> None:
    plan = plan_after_pilot(["1", "2", "3"], budget_left=350, max_tokens=100)
    assert (plan.widen_tokens, plan.revise_tokens) == (100, 200)  # 3 branches: 1 wide, 2 serial
    plan = plan_after_pilot(["1", "2", "3"], budget_left=150, max_tokens=100)
    assert (plan.widen_tokens, plan.revise_tokens) == (0, 100)  # tight budgets revise first
    plan = plan_after_pilot(["1", "1", "2", "3"], budget_left=99, max_tokens=100)
    assert plan.path == "medium" and plan.widen_tokens == 0
    assert "budget is spent" in plan.reason
    none = plan_after_pilot([None, None], budget_left=0, max_tokens=100)
    assert none.leader is None and "none of 2 pilots answered" in none.reason


def test_thresholds_are_the_documented_constants() -> None:
    assert Thresholds().easy == EASY_AGREEMENT and Thresholds().medium == MEDIUM_AGREEMENT
    lenient = Thresholds(easy=0.5, medium=0.25)
    assert plan_after_pilot(["1", "1", "2", "3"], 1000, 100, lenient).path == "easy"
    assert plan_after_pilot(["1", "2", "3", "4"], 1000, 100, lenient).path == "medium"


def test_best_attempts_prefer_popular_answers_then_natural_endings() -> None:
    answers = [None, "5", "7", "5", None, "5"]
    reasons = ["length", "length", "eos", "eos", "eos", "eos"]
    # "5" leads: its first natural ending (#3) heads; then "7"; then unanswered (natural first)
    assert best_attempts(answers, reasons) == [3, 2, 4, 0, 1, 5]
    assert best_attempts([], []) == []


def test_settle_wave_is_the_fewest_branches_that_could_settle_the_vote() -> None:
    beta = BetaRule(threshold=0.95)
    # 2 vs 1: 6 vs 1 is the first count with P(leader ahead) >= 0.95 (0.965; 5 vs 1 is 0.94)
    assert settle_wave(beta, ["42", "42", "7"]) == 4
    assert settle_wave(beta, [None, None]) == 4  # 4 vs 0 = 0.97
    assert settle_wave(beta, ["42"] * 6 + ["7"]) == 1  # settled already: keep a trickle
    assert settle_wave(BetaRule(threshold=1.0), ["1"]) == 16  # never settles: capped
    assert settle_wave(EscRule(window=3), ["1", "2"]) == 3


@pytest.mark.parametrize(
    ("answers", "final", "expected", "share"),
    [
        (["5", "5", "7"], "vote", "5", 2 / 3),
        (["5", "5", "7"], "last", "7", 1 / 3),
        (["7", "5"], "vote", "5", 1 / 2),  # a tie goes to the later round
        (["5", None], "last", "5", 1.0),  # the last round that stated an answer
        (["0.5", "1/2", "3"], "last", "3", 1 / 3),
        ([None, None], "last", None, 0.0),
        ([None, None], "vote", None, 0.0),
    ],
)
def test_choose_final(
    answers: list[str | None], final: str, expected: str | None, share: float
) -> None:
    answer, got_share, vote = choose_final(answers, final)
    assert answer == expected
    assert got_share == pytest.approx(share)
    assert vote.total == len(answers)


def test_revision_prompt_holds_question_and_attempt() -> None:
    text = revision_question("What is 6*7?", "6*7 = 43. The answer is 43.")
    assert text.startswith("What is 6*7?")
    assert "6*7 = 43" in text and "The answer is X." in text
    assert "(the attempt is empty)" in revision_question("q", "  ")


@pytest.mark.parametrize(
    ("strategy", "changes", "message"),
    [
        ("revise", {"rounds": 0}, "--rounds must be at least 1"),
        ("revise", {"final": "best"}, "--final must be one of last, vote"),
        ("auto", {"pilot": 0}, "--pilot must be at least 1"),
        ("auto", {"budget_tokens": 100, "pilot": 4, "max_tokens": 64}, "needs at least 256"),
        ("auto", {"budget_tokens": None, "branches": 2, "pilot": 4}, "needs at least"),
        ("auto", {"stop_rule": "never"}, "--stop-rule"),
        ("auto", {"beta_threshold": 0.3}, "--beta-threshold"),
    ],
)
def test_options_that_do_not_fit_are_usage_errors(
    strategy: str, changes: dict[str, object], message: str
) -> None:
    options = StrategyOptions(**{"budget_tokens": 4096, **changes})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        get_strategy(strategy).check(options)


# -- mechanics on the tiny model --------------------------------------------------------------


def scripted(monkeypatch: pytest.MonkeyPatch, answers: Sequence[str | None]) -> None:
    """Revision rounds give `answers` in order (the tiny model's own text has none)."""
    queue = list(answers)
    monkeypatch.setattr(revise_module, "branch_answer", lambda *_: queue.pop(0) if queue else None)


def pilot_script(monkeypatch: pytest.MonkeyPatch, by_id: dict[int, str | None]) -> None:
    """Branches of the pilot engine answer by id; ids not listed answer `by_id[-1]`."""
    monkeypatch.setattr(ParallelRun, "answer_of", lambda self, b: by_id.get(b.id, by_id.get(-1)))


def run_strategy(
    strategy: object, session: object, options: StrategyOptions, sink: list[Event]
) -> Result:
    strategy.check(options)  # type: ignore[attr-defined]
    return strategy.run("What is 6*7?", session, options, sink.append)  # type: ignore[attr-defined]


def test_revise_rounds_link_to_the_previous_round(
    session: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, ["5", "5", "7"])
    events: list[Event] = []
    options = StrategyOptions(rounds=3, max_tokens=6, final="vote", seed=1)
    result = run_strategy(Revise(), session, options, events)
    assert [b.id for b in result.branches] == [0, 1, 2]
    assert [b.parent for b in result.branches] == [None, 0, 1]
    assert [b.label for b in result.branches] == ["round 1", "round 2", "round 3"]
    assert all(0 < b.tokens <= 6 for b in result.branches)
    starts = [e for e in events if isinstance(e, BranchStarted)]
    assert [(e.branch, e.parent, e.label) for e in starts] == [
        (0, None, "round 1"),
        (1, 0, "round 2"),
        (2, 1, "round 3"),
    ]
    assert result.answer == "5" and result.share == pytest.approx(2 / 3)
    assert result.details["round_answers"] == ["5", "5", "7"]
    assert result.details["answer_changes"] == 1
    # each revision prompt holds the previous attempt, so it is longer than the question alone
    per_round = result.details["prompt_tokens_per_round"]
    assert per_round[1] > per_round[0] + 6 and result.prompt_tokens == sum(per_round)
    assert result.generated_tokens == sum(b.tokens for b in result.branches)
    assert sorted(m for g in result.votes for m in g.members) == [0, 1, 2]


def test_revise_final_last_takes_the_last_round(
    session: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, ["5", "5", "7"])
    options = StrategyOptions(rounds=3, max_tokens=4, final="last")
    result = run_strategy(Revise(), session, options, [])
    assert result.answer == "7" and result.share == pytest.approx(1 / 3)


def test_revise_ctrl_c_returns_the_rounds_so_far(session: object) -> None:
    events: list[Event] = []

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, BranchText) and event.branch == 1:
            raise KeyboardInterrupt

    options = StrategyOptions(rounds=3, max_tokens=6)
    result = Revise().run("q", session, options, sink)  # type: ignore[arg-type]
    assert result.interrupted is True
    assert [b.finish_reason for b in result.branches][1] == "interrupted"
    assert len(result.branches) == 2 and result.details["completed_rounds"] == 1
    assert any(isinstance(e, Note) and e.topic == "interrupt" for e in events)


def plan_notes(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, Note) and e.topic == "plan"]


def test_auto_easy_stops_after_the_pilot(session: object, monkeypatch: pytest.MonkeyPatch) -> None:
    pilot_script(monkeypatch, {0: "42", 1: "42", 2: "42", 3: "41"})
    events: list[Event] = []
    options = StrategyOptions(pilot=4, max_tokens=6, budget_tokens=200)
    result = run_strategy(Auto(), session, options, events)
    d = result.details
    assert d["path"] == "easy" and d["agreement"] == 0.75
    assert len(result.branches) == 4 and d["phases"]["widen"] == []
    assert result.answer == "42" and "easy" in (result.stop_reason or "")
    assert d["tokens"]["total"] == d["tokens"]["pilot"] == result.generated_tokens
    assert any("easy" in n for n in plan_notes(events))


def test_auto_medium_widens_the_pilot_engine_until_the_vote_settles(
    session: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    pilot_script(monkeypatch, {0: "42", 1: "42", 2: "7", 3: "8", -1: "42"})
    events: list[Event] = []
    options = StrategyOptions(pilot=4, max_tokens=6, budget_tokens=120, beta_threshold=0.95)
    result = run_strategy(Auto(), session, options, events)
    d = result.details
    assert d["path"] == "medium"
    # 2 of 4 agree: 4 more unanimous branches reach P(leader ahead) >= 0.95, so one wave of 4
    widened = d["phases"]["widen"]
    assert widened == [4, 5, 6, 7] and d["phases"]["revise"] == []
    assert "settled" in (result.stop_reason or "") and result.answer == "42"
    assert d["unspent"] >= 120 - 8 * 6
    # one shared prompt: every branch came from the pilot engine, none was prompted again
    question = session.prompt_text("What is 6*7?")  # type: ignore[attr-defined]
    assert result.prompt_tokens == len(session.prompt_tokens(question))  # type: ignore[attr-defined]
    assert all(b.parent is None for b in result.branches)
    assert d["tokens"]["widen"] == sum(result.branches[i].tokens for i in widened)


def test_auto_hard_mixes_widening_and_revision_chains(
    session: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    pilot_script(monkeypatch, {0: "1", 1: "2", 2: None, 3: "3", -1: None})
    scripted(monkeypatch, ["1", "4", "2", "2"])
    events: list[Event] = []
    options = StrategyOptions(pilot=4, max_tokens=6, budget_tokens=60)
    result = run_strategy(Auto(), session, options, events)
    d = result.details
    assert d["path"] == "hard"
    revised = [b for b in result.branches if b.id in d["phases"]["revise"]]
    assert d["phases"]["widen"] and revised
    by_id = {b.id: b for b in result.branches}
    for b in revised:  # chains start from an earlier attempt and then follow each other
        assert b.parent is not None and b.parent < b.id and b.parent in by_id
        assert b.label.startswith("revise ")
    assert revised[0].parent == 0  # chain 1 revises the best attempt ("1" first seen)
    assert d["tokens"]["total"] == result.generated_tokens <= options.budget_tokens
    assert d["unspent"] == options.budget_tokens - d["tokens"]["total"]
    assert any("revision chain 1" in n for n in plan_notes(events))


@pytest.mark.parametrize(("budget", "pilot"), [(24, 4), (50, 2), (97, 3)])
def test_auto_never_exceeds_the_budget(session: object, budget: int, pilot: int) -> None:
    options = StrategyOptions(pilot=pilot, max_tokens=6, budget_tokens=budget, seed=3)
    result = run_strategy(Auto(), session, options, [])
    assert result.details["path"] == "hard"  # the tiny model never states an answer
    assert result.generated_tokens <= budget
    assert result.details["tokens"]["total"] == result.generated_tokens


def test_auto_ctrl_c_returns_the_partial_result(session: object) -> None:
    def sink(event: Event) -> None:
        if isinstance(event, BranchText):
            raise KeyboardInterrupt

    options = StrategyOptions(pilot=2, max_tokens=6, budget_tokens=60)
    result = Auto().run("q", session, options, sink)  # type: ignore[arg-type]
    assert result.interrupted is True
    assert result.details["path"] is None
    assert len(result.branches) == 2


# -- the CLI ----------------------------------------------------------------------------------


def reason(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A real `reason` process: for the embedded model, end to end."""
    return run_reason(*args, columns=None, timeout=timeout)


def cli(*args: str) -> Run:
    """`reason` in this process (tests/cli_run.py `run_cli`): the same `main()`, faster."""
    return run_cli(*args, columns=None)


def test_cli_think_revise_json(tiny_gguf: Path) -> None:
    proc = cli(
        "think", "Is 91 prime?", "-m", str(tiny_gguf), "--strategy", "revise",
        "--rounds", "2", "--final", "vote", "--max-tokens", "6", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = json.loads(proc.stdout)
    assert data["strategy"] == "revise"
    assert [b["parent"] for b in data["branches"]] == [None, 0]
    assert data["details"]["final"] == "vote" and data["details"]["completed_rounds"] == 2


def test_cli_ask_auto_json(tiny_gguf: Path) -> None:
    proc = cli(
        "ask", "What is 2+2?", "-m", str(tiny_gguf), "--strategy", "auto",
        "--budget-tokens", "24", "--pilot", "2", "--max-tokens", "6", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    d = data["details"]
    assert data["strategy"] == "auto" and d["path"] in ("easy", "medium", "hard")
    assert d["reason"] and d["budget_tokens"] == 24
    assert set(d["tokens"]) == {"pilot", "widen", "revise", "policy", "total"}
    assert d["policy"] is None and d["tokens"]["policy"] == 0  # no tuned policy: the constants
    assert data["generated_tokens"] == d["tokens"]["total"] <= 24


@pytest.mark.parametrize(
    ("budget", "pilot", "cap"),
    [(200, 4, MIN_BRANCH_TOKENS), (800, 4, 100), (4000, 4, 500), (40_000, 4, 512), (800, 2, 200)],
)
def test_branch_cap_divides_the_budget_when_max_tokens_is_not_given(
    budget: int, pilot: int, cap: int
) -> None:
    options = StrategyOptions(budget_tokens=budget, pilot=pilot, max_tokens_explicit=False)
    got = branch_cap(options)
    assert got.tokens == cap and got.derived
    assert pilot * got.tokens <= budget


def test_branch_cap_keeps_an_explicit_max_tokens() -> None:
    options = StrategyOptions(budget_tokens=4000, pilot=4, max_tokens=300)
    assert branch_cap(options).tokens == 300 and not branch_cap(options).derived


@pytest.mark.parametrize("budget", [200, 800, 4000])
def test_cli_auto_fits_its_plan_into_the_budget(tiny_gguf: Path, budget: int) -> None:
    proc = cli(
        "ask", "What is 12 + 30?", "-m", str(tiny_gguf), "--strategy", "auto",
        "--budget-tokens", str(budget), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    d = data["details"]
    assert (
        d["max_tokens_derived"]
        and d["max_tokens"]
        == branch_cap(StrategyOptions(budget_tokens=budget, max_tokens_explicit=False)).tokens
    )
    assert all(b["tokens"] <= d["max_tokens"] for b in data["branches"])
    assert data["generated_tokens"] == d["tokens"]["total"] <= budget


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ask", "q", "-s", "auto", "--budget-tokens", "800", "--max-tokens", "512"],
            "fits: --max-tokens 200 or less, --pilot 1 or less, no --max-tokens",
        ),
        (["ask", "q", "-s", "auto", "--budget-tokens", "100"], "is too small: 4 pilot branch"),
        (["think", "q", "--strategy", "revise", "--rounds", "0"], "--rounds"),
        (["think", "q", "--strategy", "revise", "--final", "best"], "--final"),
        (["ask", "q", "--strategy", "auto", "--pilot", "0"], "--pilot"),
        (
            [
                "ask",
                "q",
                "-s",
                "auto",
                "--budget-tokens",
                "10",
                "--pilot",
                "4",
                "--max-tokens",
                "8",
            ],
            "needs at least 32",
        ),
    ],
)
def test_cli_bad_options_exit_2(args: list[str], message: str) -> None:
    one_error(cli(*args), 2, message)


# -- the embedded model -----------------------------------------------------------------------


@pytest.mark.embedded
def test_embedded_auto_and_revise_json() -> None:
    # One thread: on cores shared with other jobs, llama.cpp's two-thread barrier spins and
    # these runs took 20x longer (117 s against 5 s measured here).
    proc = reason(
        "ask", "What is 2 + 3?", "--strategy", "auto", "--budget-tokens", "192",
        "--pilot", "2", "--max-tokens", "64", "--threads", "1", "--json", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "smollm2-135m" and data["details"]["path"] in ("easy", "medium", "hard")
    assert data["generated_tokens"] <= 192
    proc = reason(
        "think", "What is 12 + 30?", "--strategy", "revise", "--rounds", "2",
        "--max-tokens", "32", "--threads", "1", "--json", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["branches"]) == 2 and data["branches"][1]["parent"] == 0
