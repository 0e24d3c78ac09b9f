"""vote (with early stopping), weighted-vote (DeepConf) and best-of-n on real llama.cpp.

Mechanics run on the tiny random model, whose text has no real answers: where a test needs
answers that agree or differ on purpose, `ParallelRun.answer_of` is scripted and everything
else (engine, scheduling, stop rules, events, results) is real.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_run import one_error, reason, run_cli

from reasoncli.engine.branches import Branch
from reasoncli.engine.sampling import Sampling
from reasoncli.errors import UsageError
from reasoncli.events import BranchFinished, BranchStarted, Event, Note, VoteUpdated
from reasoncli.results import Result
from reasoncli.session import Session
from reasoncli.stopping import EscRule
from reasoncli.strategies.base import StrategyOptions, get_strategy
from reasoncli.strategies.best_of_n import best_of_n_vote, pick_best
from reasoncli.strategies.parallel import EarlyStop, ParallelRun, VotePolicy
from reasoncli.strategies.vote import run_vote
from reasoncli.strategies.weighted_vote import confidence_vote

GREEDY = Sampling(temperature=0.0)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def script_answers(monkeypatch: pytest.MonkeyPatch, answers: dict[int, str | None] | str) -> None:
    """Branch i answers answers[i] (or the same string for every branch)."""

    def answer_of(self: ParallelRun, b: Branch) -> str | None:
        return answers if isinstance(answers, str) else answers.get(b.id)

    monkeypatch.setattr(ParallelRun, "answer_of", answer_of)


def run(name: str, session: Session, **kw: object) -> tuple[Result, Recorder]:
    options = StrategyOptions(**kw)  # type: ignore[arg-type]
    strategy = get_strategy(name)
    strategy.check(options)
    rec = Recorder()
    return strategy.run("What is 6*7?", session, options, rec), rec


# -- vote --early-stop --------------------------------------------------------------------
def test_beta_early_stop_skips_the_rest(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    script_answers(monkeypatch, "42")
    full, _ = run("vote", session, branches=16, max_tokens=8)
    result, rec = run("vote", session, branches=16, max_tokens=8, early_stop=True)
    assert len(full.branches) == 16 and full.stop_reason is None
    early = result.details["early_stop"]
    # 4 unanimous answers are the fewest with P(leader wins) >= 0.95, so 4 run at once.
    assert early["in_flight"] == 4 and early["stopped"] is True
    assert early["started"] == [0, 1, 2, 3] and early["skipped"] == 12
    assert len(result.branches) == 4 and len(rec.of(BranchStarted)) == 4
    assert result.answer == "42"
    assert result.stop_reason.startswith("stopped after 4/16 branches: 42 leads 4 to 0")
    notes = [n for n in rec.of(Note) if n.topic == "early_stop"]
    assert [n.message for n in notes] == [result.stop_reason]
    assert result.generated_tokens <= full.generated_tokens / 3


def test_esc_waits_for_a_window_that_agrees(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Greedy branches are identical, so waves of 3 finish together: 0-2, then 3-5, ...
    script_answers(monkeypatch, {0: "1", 1: "2", 2: "3", 3: "7", 4: "7", 5: "7"})
    result, rec = run(
        "vote",
        session,
        branches=12,
        max_tokens=6,
        sampling=GREEDY,
        early_stop=True,
        stop_rule="esc",
        esc_window=3,
    )
    early = result.details["early_stop"]
    assert early["in_flight"] == 3
    assert early["finished"] == [0, 1, 2, 3, 4, 5] and early["skipped"] == 6
    assert result.answer == "7" and "last 3 answers agree on 7" in result.stop_reason
    votes = rec.of(VoteUpdated)
    assert votes[-1].finished == 6 and votes[-1].total == 12


def test_early_stopped_run_is_a_prefix_of_the_full_run(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seeds and the same launch waves: what ran before the stop is identical, which is
    what lets benchmarks/early_stop.py replay early stopping from one full run."""
    options = StrategyOptions(branches=8, max_tokens=10, early_stop=True)
    early = EarlyStop.from_options(options)
    assert early is not None
    full = run_vote("vote", "What is 6*7?", session, options, Recorder(), in_flight=4)
    script_answers(monkeypatch, "42")
    stopped = run_vote("vote", "What is 6*7?", session, options, Recorder(), early=early)
    assert [b.id for b in stopped.branches] == [0, 1, 2, 3]
    for a, b in zip(stopped.branches, full.branches, strict=False):
        assert a.text == b.text and a.tokens == b.tokens


def test_stop_rule_fired_mid_wave_cuts_running_branches(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Branch 0 may write 3 tokens, the others 12: when it settles the vote, the two
    branches in flight are cut short and the queued ones never start."""
    script_answers(monkeypatch, "5")
    rec = Recorder()
    pr = ParallelRun("vote", "q", session, rec, max_tokens=12, max_branches=6)
    try:
        short = pr.add(session.sampling.with_seed(0))
        pr.engine.inject(short, "", max_tokens=3)
        for i in range(1, 6):
            pr.queue(session.sampling.with_seed(i))
        pr.drive(policy=VotePolicy(EarlyStop("esc", EscRule(window=1), in_flight=3)))
        assert pr.finish_order == [0] and pr.stop_reason is not None
        assert pr.skipped == 3 and len(pr.engine.branches) == 3
        cut = pr.engine.branches[1:]
        assert all(b.finish_reason == "stopped" and b.n_tokens < 12 for b in cut)
        ends = {e.branch: e.finish_reason for e in rec.of(BranchFinished)}
        assert ends == {0: "length", 1: "stopped", 2: "stopped"}
        result = pr.result(pr.vote())
        assert result.answer == "5" and len(result.branches) == 3
    finally:
        pr.close()


def test_in_flight_is_the_smallest_vote_that_can_stop() -> None:
    def in_flight(**kw: object) -> int:
        e = EarlyStop.from_options(StrategyOptions(early_stop=True, **kw))  # type: ignore[arg-type]
        assert e is not None
        return e.in_flight

    assert in_flight(branches=16) == 4
    assert in_flight(branches=16, beta_threshold=0.99) == 6  # 1 - 2**-7 >= 0.99
    assert in_flight(branches=3) == 3
    assert in_flight(branches=16, stop_rule="esc", esc_window=5) == 5
    assert EarlyStop.from_options(StrategyOptions()) is None


# -- weighted-vote --------------------------------------------------------------------------
def test_online_confidence_cuts_branches_after_warmup(session: Session) -> None:
    result, rec = run(
        "weighted-vote",
        session,
        branches=6,
        max_tokens=32,
        window=4,
        warmup=2,
        keep_percent=10,
    )
    d = result.details
    branches = {b.id: b for b in result.branches}
    assert d["warmup"] == [0, 1] and isinstance(d["threshold"], float)
    assert d["low_confidence"], "a 90th-percentile threshold should cut some branch"
    for i in d["low_confidence"]:
        b = branches[i]
        assert i >= 2 and b.finish_reason == "low_confidence" and b.answer is None
        assert 4 <= b.tokens < 32
    assert all(isinstance(b.confidence, float) for b in branches.values())
    voters = set(d["kept"]) | set(d["filtered"])
    assert voters == set(branches) - set(d["low_confidence"])
    assert sum(g.count for g in result.votes) <= len(d["kept"])
    cut_notes = [n for n in rec.of(Note) if n.topic == "early_stop"]
    assert len(cut_notes) == len(d["low_confidence"])
    assert any("threshold" in n.message for n in rec.of(Note) if n.topic == "plan")
    # The warm-up runs alone: nothing else starts before both warm-up branches end.
    order = [(type(e).__name__, e.branch) for e in rec.events if isinstance(e, BranchStarted)]
    assert order[:2] == [("BranchStarted", 0), ("BranchStarted", 1)]
    first_end = next(i for i, e in enumerate(rec.events) if isinstance(e, BranchFinished))
    assert not any(isinstance(e, BranchStarted) and e.branch >= 2 for e in rec.events[:first_end])


def test_offline_weighting_keeps_the_most_confident(session: Session) -> None:
    result, _ = run(
        "weighted-vote", session, branches=5, max_tokens=8, window=4, warmup=0, keep_percent=40
    )
    d = result.details
    assert d["threshold"] is None and d["low_confidence"] == []
    assert len(d["kept"]) == 2 and len(d["filtered"]) == 3
    conf = {b.id: b.confidence for b in result.branches}
    assert min(conf[i] for i in d["kept"]) >= max(conf[i] for i in d["filtered"])


def test_confidence_vote_weights_and_filters() -> None:
    answers = ["1", "1", "2", None]
    vote, kept = confidence_vote(answers, [1.0, 1.0, 5.0, 9.0], 100)
    assert vote.answer == "2" and kept == [0, 1, 2, 3]
    vote, kept = confidence_vote(answers, [3.0, 2.5, 1.0, 0.5], 50)
    assert vote.answer == "1" and kept == [0, 1]
    vote, kept = confidence_vote(["1", "2"], [math.nan, math.nan], 100)
    assert vote.answer == "1" and vote.share == 0.5  # no usable weight: one vote each
    assert confidence_vote([], [], 90)[0].answer is None


# -- best-of-n and verifiers ----------------------------------------------------------------
def test_pick_best_and_ties() -> None:
    assert pick_best(["1", "2", "3"], [0.2, 0.9, 0.5]) == [1]
    assert pick_best([None, "2"], [0.99, 0.1]) == [1]  # no answer, no pick
    assert pick_best([None, " "], [0.5, 0.5]) == []
    assert pick_best(["1", "2"], [math.nan, 0.1]) == [1]
    vote = best_of_n_vote(["7", "8", "8", "7"], [0.9, 0.9, 0.9, 0.1])
    assert vote.answer == "8"  # three-way tie at 0.9, settled by a vote among the tied
    assert vote.share == pytest.approx(1.8 / 2.8)
    assert best_of_n_vote([None], [1.0]).answer is None


def test_best_of_n_confidence_picks_the_top_score(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    script_answers(monkeypatch, {i: str(i) for i in range(4)})
    result, rec = run("best-of-n", session, branches=4, max_tokens=8)
    scores = {b.id: b.score for b in result.branches}
    assert all(0 <= s <= 1 for s in scores.values())
    best = max(scores, key=lambda i: scores[i])
    assert result.answer == str(best) and result.details["best"] == [best]
    ends = rec.of(BranchFinished)
    assert {e.branch: e.score for e in ends} == scores


# -- options that do not fit ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "kw", "message"),
    [
        ("vote", {"stop_rule": "nope"}, "--stop-rule"),
        ("vote", {"early_stop": True, "stop_rule": "esc", "esc_window": 9}, "--esc-window"),
        ("vote", {"early_stop": True, "beta_threshold": 0.4}, "--beta-threshold"),
        ("weighted-vote", {"keep_percent": 0}, "--keep-percent"),
        ("weighted-vote", {"keep_percent": 101}, "--keep-percent"),
        ("weighted-vote", {"warmup": 9}, "--warmup"),
        ("weighted-vote", {"window": 0}, "--window"),
        ("best-of-n", {"verifier": "nope"}, "unknown verifier"),
        ("best-of-n", {"early_stop": True}, "--early-stop"),
    ],
)
def test_check_rejects_options_that_do_not_fit(strategy: str, kw: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        get_strategy(strategy).check(StrategyOptions(branches=8, **kw))


# -- the CLI --------------------------------------------------------------------------------


def test_cli_weighted_vote_json(tiny_gguf: Path) -> None:
    proc = run_cli(
        "ask", "What is 6*7?", "-m", str(tiny_gguf), "-s", "weighted-vote", "-n", "4",
        "--max-tokens", "12", "--window", "4", "--warmup", "2", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["strategy"] == "weighted-vote" and len(data["branches"]) == 4
    assert all(isinstance(b["confidence"], float) for b in data["branches"])
    assert {"threshold", "warmup", "kept", "filtered", "low_confidence"} <= set(data["details"])


def test_cli_best_of_n_self_verifier_json(tiny_gguf: Path) -> None:
    proc = run_cli(
        "ask", "What is 6*7?", "-m", str(tiny_gguf), "-s", "best-of-n", "-n", "3",
        "--max-tokens", "8", "--verifier", "self", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["details"]["verifier"] == "self"
    assert all(0 <= b["score"] <= 1 for b in data["branches"])


@pytest.mark.parametrize("how", ["min", "prod", "last"])
def test_cli_best_of_n_prm_scores_every_step_prefix(tiny_gguf: Path, how: str) -> None:
    """prm: scores each step prefix of a branch; the branch score is their aggregate, and
    --pick weighted answers with the score-weighted vote."""
    from reasoncli.solution_steps import step_prefixes
    from reasoncli.verifiers import aggregate_scores
    from reasoncli.voting import majority_vote

    proc = run_cli(
        "ask", "What is 6*7?", "-m", str(tiny_gguf), "-s", "best-of-n", "-n", "3",
        "--max-tokens", "16", "--verifier", f"prm:{tiny_gguf}", "--aggregate", how,
        "--pick", "weighted", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    details = data["details"]
    assert details["verifier"].startswith("prm:") and details["pick"] == "weighted"
    by_id = {b["id"]: b for b in data["branches"]}
    for i, steps in enumerate(details["step_scores"]):
        if steps is None:
            continue
        assert len(steps) == len(step_prefixes(by_id[i]["text"]))
        assert details["scores"][i] == pytest.approx(aggregate_scores(steps, how))
    answers = [by_id[i]["answer"] for i in range(len(details["scores"]))]
    scores = [s if s is not None else 0.0 for s in details["scores"]]
    assert data["answer"] == majority_vote(answers, scores).answer


@pytest.mark.parametrize(
    ("verifier", "message"),
    [("prm:", "prm:"), ("xyz:foo", "xyz"), ("orm:no-such-model", "unknown verifier")],
)
def test_cli_bad_verifier_prefixes_exit_2(tiny_gguf: Path, verifier: str, message: str) -> None:
    proc = run_cli(
        "ask", "q", "-m", str(tiny_gguf), "-s", "best-of-n", "-n", "2", "--verifier", verifier,
    )  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_bad_pick_exits_2(tiny_gguf: Path) -> None:
    proc = run_cli("ask", "q", "-m", str(tiny_gguf), "-s", "best-of-n", "--pick", "nope")
    assert proc.returncode == 2 and "--pick" in proc.stderr


def test_cli_vote_early_stop_json(tiny_gguf: Path) -> None:
    """Greedy branches agree (the tiny model's text after '####' is its 'answer')."""
    proc = run_cli(
        "ask", "What is 2+2?", "-m", str(tiny_gguf), "-n", "16", "-t", "0",
        "--max-tokens", "16", "--early-stop", "--jsonl",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    data = lines[-1]
    assert data["answer"] is not None
    assert data["stop_reason"].startswith("stopped after 4/16 branches")
    assert data["details"]["early_stop"]["started"] == [0, 1, 2, 3]
    assert [e["event"] for e in lines].count("branch_start") == 4
    notes = [e for e in lines if e["event"] == "note" and e["topic"] == "early_stop"]
    assert notes and notes[0]["message"] == data["stop_reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stop-rule", "sometimes"], "--stop-rule"),
        (["-s", "weighted-vote", "--keep-percent", "0"], "--keep-percent"),
        (["-s", "weighted-vote", "-n", "4", "--warmup", "5"], "--warmup"),
        (["-s", "best-of-n", "--verifier", "no-such-model"], "unknown verifier"),
        (["--early-stop", "--stop-rule", "esc", "--esc-window", "9", "-n", "4"], "--esc-window"),
    ],
)
def test_cli_bad_options_exit_2(tiny_gguf: Path, args: list[str], message: str) -> None:
    one_error(run_cli("ask", "q", "-m", str(tiny_gguf), *args), 2, message)


# -- the embedded model, end to end ---------------------------------------------------------
@pytest.mark.embedded
def test_embedded_weighted_vote_with_early_stop() -> None:
    proc = reason(
        "ask", "What is 12 + 30?", "-s", "weighted-vote", "-n", "8", "--max-tokens", "96",
        "--early-stop", "--json", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "smollm2-135m" and data["strategy"] == "weighted-vote"
    assert data["details"]["early_stop"]["rule"] == "beta"
    assert all(b["confidence"] is not None for b in data["branches"] if b["tokens"])


@pytest.mark.embedded
def test_embedded_best_of_n_self_verifier() -> None:
    proc = reason(
        "ask", "What is 12 + 30?", "-s", "best-of-n", "-n", "4", "--max-tokens", "96",
        "--verifier", "self", "--json", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    scores = [b["score"] for b in data["branches"]]
    assert all(0 <= s <= 1 for s in scores)
    if data["answer"] is not None:
        best = data["details"]["best"][0]
        assert data["branches"][best]["score"] == max(
            b["score"] for b in data["branches"] if b["answer"] is not None
        )


# -- prefill sharing ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("vote", {}),
        ("best-of-n", {}),
        ("beam", {"beam_width": 2, "step_tokens": 4}),
        ("dvts", {"beam_width": 2, "step_tokens": 4}),
    ],
)
def test_the_prompt_is_decoded_once_for_all_branches(
    session: Session, name: str, extra: dict[str, object]
) -> None:
    result, _ = run(name, session, branches=8, max_tokens=8, **extra)
    t = result.timings
    # set_prompt decodes the whole prompt once; each branch samples its first token from the
    # prompt's logits. So one prompt's worth, not 8.
    assert t.prompt_tokens_decoded == result.prompt_tokens
    assert t.decode_calls > 1
    assert result.to_json()["timings"]["prompt_tokens_decoded"] == t.prompt_tokens_decoded


def test_revise_sums_the_counters_over_its_engines(session: Session) -> None:
    result, _ = run("revise", session, rounds=2, max_tokens=4)
    per_round = result.details["prompt_tokens_per_round"]
    assert result.timings.prompt_tokens_decoded == sum(per_round)
