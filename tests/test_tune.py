"""`reason tune` and `auto` following its policy.

The fit is checked on the committed difficulty-2 results (where the tuned policy does not beat
the best uniform strategy out of sample, so nothing is written) and end to end on a real
`reason bench` run of the tiny model whose answers are scripted so that the pilot's agreement
tells easy from hard questions: there a policy is written into models.yaml, read back, and
`auto` on the tiny model takes the branch it names.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_run import Run, run_cli, start, wait_for_samples

from reasoncli.bench.picks import pick_is_right
from reasoncli.bench.progress import NullProgress
from reasoncli.bench.runner import BenchRequest, prepare_bench
from reasoncli.errors import CatalogError, UsageError
from reasoncli.events import Event, Note
from reasoncli.models.catalog import load_catalog
from reasoncli.strategies.auto import Auto
from reasoncli.strategies.base import StrategyOptions
from reasoncli.strategies.parallel import ParallelRun
from reasoncli.tune.candidates import load_candidates
from reasoncli.tune.difficulty import ESTIMATES, SCORED, Pilot, auc, estimate
from reasoncli.tune.fit import TuneSettings, allocate, fit_policy, held_out_mask
from reasoncli.tune.follow import applicable
from reasoncli.tune.policy import ESTIMATE_NAMES, Action, PolicyBin, PolicyRow, TunedPolicy
from reasoncli.tune.store import write_policy

RESULTS = Path(__file__).parent.parent / "benchmarks" / "results"
ARITH2 = [
    RESULTS / f"arith2-heldout200-t10-{name}.jsonl"
    for name in ("vote16", "bon16-prm", "dvts-prm", "beam-prm", "greedy")
]
NO_POLICY = 10


def reason(*args: str, env: dict[str, str] | None = None) -> Run:
    """`reason` in this process (tests/cli_run.py `run_cli`), stdin empty."""
    return run_cli(*args, input=None, env=env, columns=None)


def _sums(path: Path, count: int, *, plus: int = 1, answer: str | None = None) -> Path:
    """A labelled data file: question i is "What is i + PLUS?", id q{i}, its answer i + PLUS
    unless `answer` is given (the scripted tests grade every question against one answer)."""
    lines = (
        json.dumps(
            {"id": f"q{i}", "question": f"What is {i} + {plus}?", "answer": answer or str(i + plus)}
        )
        + "\n"
        for i in range(count)
    )
    path.write_text("".join(lines))
    return path


# -- pieces -----------------------------------------------------------------------------------


def test_estimate_names_are_the_schemas() -> None:
    assert tuple(ESTIMATES) == ESTIMATE_NAMES


def test_estimates_read_only_the_pilot() -> None:
    agree = Pilot(["42", "42", "42", "7"], [10, 10, 10, 10], 100)
    split = Pilot(["1", "2", None, "3"], [100, 90, 100, 80], 100)
    assert estimate("disagreement", agree) == pytest.approx(0.25)
    assert estimate("disagreement", split) == pytest.approx(0.75)
    assert estimate("length", agree) == pytest.approx(0.1)
    # the length part orders equal agreements and never crosses a whole agreement step
    longer = Pilot(["42", "42", "42", "7"], [100, 100, 100, 100], 100)
    combined = [estimate("disagreement+length", p) for p in (agree, longer, split)]
    assert combined == sorted(combined) and combined[1] < 0.5
    assert auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auc([0.5, 0.5], [True, False]) == 0.5 and auc([1.0], [True]) is None


def test_split_is_a_fixed_hash_of_the_id() -> None:
    ids = [f"q{i}" for i in range(400)]
    mask = held_out_mask(ids, 0)
    assert mask.tolist() == held_out_mask(list(reversed(ids)), 0)[::-1].tolist()
    assert 150 < mask.sum() < 250 and (mask != held_out_mask(ids, 1)).any()


def test_allocation_spends_where_it_pays() -> None:
    # two bins of one question each; (right, cost, index) per option
    easy = [(1, 10.0, 0), (1, 40.0, 1)]
    hard = [(0, 10.0, 0), (1, 40.0, 1)]
    assert allocate([easy, hard], cap=50) == [0, 1]  # cheap where it is enough
    assert allocate([easy, hard], cap=20) == [0, 0]
    assert allocate([easy, hard], cap=10) is None


# -- candidates from committed files ----------------------------------------------------------


@pytest.fixture(scope="module")
def arith2() -> Any:
    return load_candidates(ARITH2, pilot=4)


def test_vote_candidates_are_the_tools_own_votes(arith2: Any) -> None:
    by_label = {c.label: c for c in arith2.candidates}
    rows = [
        json.loads(line)
        for line in (RESULTS / "arith2-heldout200-t10-vote16.jsonl").read_text().splitlines()
    ]
    samples = {r["id"]: r for r in rows if r.get("type") == "sample"}
    vote16 = by_label["vote n=16"].alone
    assert vote16.correct.tolist() == [bool(samples[i]["correct"]) for i in arith2.ids]
    vote8 = by_label["vote n=8"].alone
    assert vote8.correct.tolist() == [pick_is_right(samples[i], 8) for i in arith2.ids]
    assert vote8.correct.mean() == pytest.approx(0.32)  # README: maj@8 32.0%
    assert vote8.generated.tolist() == [sum(samples[i]["branch_tokens"][:8]) for i in arith2.ids]
    # widening the pilot reuses it: no extra tokens; vote n=4 is the pilot's own vote
    assert (by_label["vote n=8"].after_pilot.total == vote8.total).all()
    assert by_label["vote n=4"].after_pilot.correct.tolist() == [
        pick_is_right(samples[i], 4) for i in arith2.ids
    ]
    assert by_label["vote n=3"].after_pilot is None  # the pilot already drew 4
    # any other strategy runs after the pilot and pays for it
    dvts = by_label["dvts n=8 prm:smollm2-arith2-prm"]
    assert (dvts.after_pilot.total == dvts.alone.total + arith2.pilots.tokens).all()
    assert "not recorded" in dvts.verifier_note
    assert "greedy" in by_label and by_label["greedy"].action.temperature == 0.0


def test_committed_difficulty2_policy_is_refused_with_the_numbers(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    proc = run_cli(
        "tune", *(f"--from={f}" for f in ARITH2), "-m", "smollm2-135m",
        "--budgets", "192,256,512", "--json", env={"REASON_MODELS": str(models)},
        input=None, columns=None,
    )  # fmt: skip
    assert proc.returncode == NO_POLICY, proc.stderr
    data = json.loads(proc.stdout)
    assert data["policy"] is None and data["written"] is None and not models.exists()
    assert "no policy written" in data["verdict"]
    assert data["estimate"] == "disagreement"  # the best AUC on the fit part
    assert all(e["auc_fit"] > 0.5 for e in data["estimates"] if e["name"] != "length")
    rows = [r for r in data["rows"] if r["strategies"]]
    assert rows and all(not r["passed"] and r["gain"][1] <= 0 for r in rows)
    assert all(r["baseline"]["total"] <= 1.1 * r["held_out"]["total"] for r in rows)


# -- end to end on the tiny model -------------------------------------------------------------

QUESTIONS = 60


def _answer(question: str, branch: int) -> str:
    """Easy questions (even numbers): every branch right. Hard ones: the 4 pilots and the next
    8 branches all differ, the last 4 are right, so only a vote of 14 or more finds 7."""
    number = int(question.split()[2])
    if number % 2 == 0 or branch >= 12:
        return "7"
    return str(100 + branch)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ParallelRun, "answer_of", lambda self, b: _answer(self.question, b.id))


@pytest.fixture
def registry(tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(f"models:\n  tiny-tuned:\n    source:\n      path: {tiny_gguf}\n")
    monkeypatch.setenv("REASON_MODELS", str(path))
    return path


@pytest.fixture
def tiny_session(registry: Path) -> Iterator[Any]:
    from reasoncli.cli.runner import ModelRequest, load_session

    session = load_session(ModelRequest("tiny-tuned", threads=1))
    yield session
    session.close()


def test_tune_writes_a_policy_auto_follows(
    tmp_path: Path, registry: Path, tiny_session: Any, scripted: None
) -> None:
    data = _sums(tmp_path / "data.jsonl", QUESTIONS, plus=0, answer="7")
    out = tmp_path / "vote16.jsonl"
    job = prepare_bench(
        BenchRequest(data=str(data), branches=[16], max_tokens=4, out=out, model="tiny-tuned")
    )
    job.run(tiny_session, NullProgress())
    proc = reason("tune", "--from", str(out), "-m", "tiny-tuned", "--budgets", "48,64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "policy written to" in proc.stdout and "beats it" in proc.stdout
    text = registry.read_text()
    assert "policy:" in text and "bins:" in text and "4 of 4 pilots agree" in text
    policy = load_catalog().get("tiny-tuned").policy
    assert policy is not None and policy.estimate == "disagreement" and policy.pilot == 4
    row = policy.budgets[0]
    # the cheapest vote that finds 7 on hard questions: 2 right votes against single wrong ones
    assert [a.label() for a in row.strategies.values()] == ["vote n=4", "vote n=14"]
    assert row.held_out is not None and row.held_out.gain_low > 0

    auto = Auto()  # reads the policy from models.yaml by the session's model name
    options = StrategyOptions(budget_tokens=200, max_tokens_explicit=False)
    events: list[Event] = []
    hard = auto.run("What is 1 + 0?", tiny_session, options, events.append)
    d = hard.details
    assert d["path"] == "policy" and d["policy"]["bin"] == "bin2"
    assert d["policy"]["strategy"] == "vote n=14" and d["policy"]["row"] == row.budget
    assert d["phases"]["pilot"] == [0, 1, 2, 3] and d["phases"]["widen"] == list(range(4, 14))
    assert hard.answer == "7" and hard.generated_tokens == 14 * 4
    plan = [e.message for e in events if isinstance(e, Note) and e.topic == "plan"]
    assert any("tuned policy" in m for m in plan)
    assert any("bin 2 of 2" in m and "vote n=14" in m for m in plan)

    easy = auto.run("What is 2 + 0?", tiny_session, options, [].append)
    assert easy.details["policy"]["bin"] == "bin1" and len(easy.branches) == 4
    assert easy.answer == "7" and easy.generated_tokens == 4 * 4

    # what tune predicted for each question is what auto did
    cs = load_candidates([out], pilot=4)
    chosen = {c.label: c for c in cs.candidates}
    assert chosen["vote n=14"].after_pilot.correct[cs.ids.index("q1")] == (hard.answer == "7")
    assert chosen["vote n=14"].after_pilot.total[cs.ids.index("q1")] == hard.generated_tokens


def _policy(hard: Action) -> TunedPolicy:
    return TunedPolicy(
        estimate="disagreement",
        pilot=2,
        max_tokens=4,
        bins=(PolicyBin(name="easy", up_to=0.0), PolicyBin(name="hard")),
        budgets=(
            PolicyRow(
                budget=100,
                strategies={"easy": Action(strategy="vote", branches=2), "hard": hard},
            ),
        ),
    )


def test_auto_runs_another_strategy_after_the_pilot_and_counts_it(tiny_session: Any) -> None:
    policy = _policy(Action(strategy="best-of-n", branches=3, verifier="confidence"))
    auto = Auto(policies=lambda name: policy)
    options = StrategyOptions(budget_tokens=200, max_tokens_explicit=False)
    result = auto.run("What is 6*7?", tiny_session, options, [].append)  # no answers: hard
    d = result.details
    assert d["policy"]["bin"] == "hard" and d["policy"]["strategy"] == "best-of-n n=3"
    assert [b.id for b in result.branches] == [0, 1, 2, 3, 4]
    assert [b.label for b in result.branches[2:]] == ["policy"] * 3
    assert d["phases"]["policy"] == [2, 3, 4]
    assert d["tokens"]["pilot"] + d["tokens"]["policy"] == result.generated_tokens
    assert d["inner"] is not None and "scores" in d["inner"]


def test_a_policy_that_does_not_fit_the_run_leaves_the_constants(tiny_session: Any) -> None:
    policy = _policy(Action(strategy="vote", branches=4))
    options = StrategyOptions(budget_tokens=200, max_tokens=6, max_tokens_explicit=True)
    row, why = applicable(policy, options, 200)
    assert row is None and "--max-tokens 6" in why
    assert applicable(policy, StrategyOptions(max_tokens_explicit=False), 50)[0] is None
    result = Auto(policies=lambda name: policy).run("q", tiny_session, options, [].append)
    assert result.details["path"] in ("easy", "medium", "hard")
    assert "--max-tokens 6" in result.details["policy_not_used"]


def test_a_bad_policy_in_models_yaml_names_the_field(registry: Path) -> None:
    registry.write_text(
        registry.read_text()
        + "    policy:\n      estimate: vibes\n      pilot: 4\n      max_tokens: 128\n"
        + "      bins: [{name: all}]\n"
        + "      budgets: [{budget: 100, strategies: {all: {strategy: vote, branches: 4}}}]\n"
    )
    with pytest.raises(CatalogError, match="tiny-tuned.*policy.*estimate"):
        load_catalog()


def test_write_policy_round_trips_and_keeps_the_file(registry: Path) -> None:
    registry.write_text("# mine\n" + registry.read_text())
    policy = _policy(Action(strategy="dvts", branches=8, verifier="prm:p", beam_width=4))
    write_policy("tiny-tuned", policy)
    assert registry.read_text().startswith("# mine\n")
    assert load_catalog().get("tiny-tuned").policy == policy
    assert np.isclose(policy.bin_of(0.0), 0) and policy.bin_of(0.5) == 1


def test_tune_runs_the_ladder_with_bench_and_resumes(tiny_gguf: Path, tmp_path: Path) -> None:
    data = _sums(tmp_path / "data.jsonl", 20)
    runs = tmp_path / "runs"
    args = ["tune", str(data), "-m", str(tiny_gguf), "--threads", "1", "-n", "4"]
    args += ["--max-tokens", "4", "--budgets", "8", "--out", str(runs), "--json"]
    proc = reason(*args)
    # the tiny model states no answers: nothing beats anything, so no policy
    assert proc.returncode == NO_POLICY, proc.stderr
    files = sorted(p.name for p in runs.iterdir())
    assert files == ["greedy.jsonl", "revise.jsonl", "think.jsonl", "vote.jsonl"]
    samples = {f: _samples(runs / f) for f in files}
    assert all(len(s) == 20 for s in samples.values())
    assert {r["branches"] for r in samples["vote.jsonl"]} == {4}
    assert {r["max_tokens"] for r in samples["think.jsonl"]} == {8}
    labels = {p["label"] for p in json.loads(proc.stdout)["frontier"]}
    assert {"greedy", "vote n=4", "think 8 tok", "revise 4 tok"} <= labels
    again = reason(*args)  # resumes every file: nothing is generated twice
    assert again.returncode == NO_POLICY, again.stderr
    assert all(len(_samples(runs / f)) == 20 for f in files)
    assert all(_lines(runs / f, "run")[-1]["resumed"] for f in files)


def _lines(path: Path, kind: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("type") == kind]


def _samples(path: Path) -> list[dict[str, Any]]:
    return _lines(path, "sample")


# -- a policy that scores its pilots ---------------------------------------------------------


def test_verifier_estimates_read_the_pilot_scores() -> None:
    sure = Pilot(["42", "7"], [10, 10], 100, scores=[0.9, 0.2])
    torn = Pilot(["42", "7"], [10, 10], 100, scores=[0.5, 0.5])
    assert estimate("verifier-best", sure) == pytest.approx(0.1)
    assert estimate("verifier-best", torn) == pytest.approx(0.5)
    assert estimate("verifier-share", sure) == pytest.approx(1 - 0.9 / 1.1)
    assert estimate("verifier-share", torn) == pytest.approx(0.5)
    # a pilot without an answer cannot make the question look easy, whatever its score
    assert estimate("verifier-best", Pilot([None, "7"], [10, 10], 100, [0.99, 0.3])) == 0.7
    with pytest.raises(ValueError, match="verifier scores"):
        estimate("verifier-best", Pilot(["42"], [10], 100))


def test_a_scored_estimate_needs_a_scored_pilot_file() -> None:
    cs = load_candidates(ARITH2, pilot=4)  # the pilot is the vote file's: no scores
    with pytest.raises(UsageError, match="verifier scores"):
        fit_policy(cs, TuneSettings(estimate="verifier-best"))


def test_a_scored_estimate_and_the_policy_verifier_come_together() -> None:
    bins = (PolicyBin(name="all"),)
    rows = (PolicyRow(budget=10, strategies={"all": Action(strategy="vote")}),)
    with pytest.raises(ValueError, match="verifier scores the pilots"):
        TunedPolicy(estimate="verifier-best", pilot=2, max_tokens=4, bins=bins, budgets=rows)
    with pytest.raises(ValueError, match="verifier scores the pilots"):
        TunedPolicy(
            estimate="disagreement", pilot=2, max_tokens=4, verifier="self", bins=bins, budgets=rows
        )
    judged = Action(
        strategy="best-of-n", branches=4, verifier="orm:x", pick="weighted", max_tokens=4
    )
    assert judged.widens_pilot(4, "orm:x") and not judged.widens_pilot(4, "orm:y")
    assert not judged.widens_pilot(4) and not judged.widens_pilot(8, "orm:x")
    assert not Action(
        strategy="best-of-n", branches=4, verifier="orm:x", aggregate="min"
    ).widens_pilot(4, "orm:x")


def test_auto_scores_its_pilots_and_widens_best_of_n_as_tune_predicts(
    tmp_path: Path, registry: Path, tiny_session: Any, scripted: None
) -> None:
    data = _sums(tmp_path / "data.jsonl", 20, plus=0, answer="7")
    out = tmp_path / "bon4.jsonl"
    request = BenchRequest(
        data=str(data),
        strategies=["best-of-n"],
        branches=[4],
        max_tokens=4,
        out=out,
        model="tiny-tuned",
        options={"verifier": "self"},
    )
    prepare_bench(request).run(tiny_session, NullProgress())
    cs = load_candidates([out], pilot=2)
    assert cs.pilots.verifier == "self" and cs.pilots.verifier_tokens is not None
    by_label = {c.label: c for c in cs.candidates}
    widened = by_label["best-of-n n=4 weighted self"].after_scored_pilot
    assert widened is not None  # it reuses the scored pilots: no pilot paid twice
    assert np.array_equal(widened.total, by_label["best-of-n n=4 weighted self"].alone.total)
    # a vote after a scored pilot pays for the scoring; greedy pays for the pilot too
    vote = by_label["vote n=4"].after_scored_pilot
    assert vote is not None and np.array_equal(vote.verifier, cs.pilots.verifier_tokens)

    # the scored estimates compete only when named: a better AUC does not pay for the scoring
    default = fit_policy(cs, TuneSettings(budgets=(64,)))
    assert default.estimate not in SCORED and default.pilot_verifier is None
    named = fit_policy(cs, TuneSettings(budgets=(64,), estimate="verifier-best"))
    assert named.estimate == "verifier-best" and named.pilot_verifier == "self"
    assert {e.name for e in named.estimates} >= SCORED

    action = Action(strategy="best-of-n", branches=4, verifier="self", pick="weighted")
    policy = TunedPolicy(
        estimate="verifier-best",
        pilot=2,
        max_tokens=4,
        verifier="self",
        bins=(PolicyBin(name="sure", up_to=-1.0), PolicyBin(name="unsure")),
        budgets=(
            PolicyRow(
                budget=100,
                strategies={"sure": Action(strategy="vote", branches=2), "unsure": action},
            ),
        ),
    )
    auto = Auto(policies=lambda name: policy)
    options = StrategyOptions(budget_tokens=400, max_tokens_explicit=False)
    for qid in ("q1", "q2"):  # hard (pilots all differ) and easy (every branch says 7)
        events: list[Event] = []
        result = auto.run(f"What is {qid[1:]} + 0?", tiny_session, options, events.append)
        d = result.details
        assert d["policy"]["bin"] == "unsure" and d["policy"]["strategy"] == action.label()
        assert d["phases"]["pilot"] == [0, 1] and d["phases"]["widen"] == [2, 3]
        assert all(b.score is not None for b in result.branches)
        plan = [e.message for e in events if isinstance(e, Note) and e.topic == "plan"]
        assert any("scored by self" in m for m in plan)
        assert any("best verifier score" in m for m in plan)
        i = cs.ids.index(qid)
        assert result.generated_tokens == widened.generated[i]
        assert d["verifier_tokens"] == widened.verifier[i] > 0
        assert (result.answer == "7") == bool(widened.correct[i])

    # a row that answers from the scored pilots: tune costs the judge's reading of 2 of the
    # file's 4 branches exactly (its prompt once, plus theirs), as auto then spends it
    assert all(r["verifier_branch_tokens"] for r in _samples(out))
    pilot_only = by_label["best-of-n n=2 weighted self"].after_scored_pilot
    assert pilot_only is not None and not by_label["best-of-n n=2 weighted self"].verifier_note
    stop = Action(strategy="best-of-n", branches=2, verifier="self", pick="weighted")
    answer_now = policy.model_copy(
        update={
            "bins": (PolicyBin(name="sure", up_to=2.0), PolicyBin(name="unsure")),
            "budgets": (PolicyRow(budget=100, strategies={"sure": stop, "unsure": action}),),
        }
    )
    result = Auto(policies=lambda name: answer_now).run(
        "What is 3 + 0?", tiny_session, options, [].append
    )
    i = cs.ids.index("q3")
    assert result.details["policy"]["bin"] == "sure" and len(result.branches) == 2
    assert result.details["verifier_tokens"] == pilot_only.verifier[i]
    assert result.generated_tokens == pilot_only.generated[i]


def test_ctrl_c_while_tune_generates_keeps_the_results(tiny_gguf: Path, tmp_path: Path) -> None:
    """A real process and a real SIGINT: tune's runs go through run_signals, so a Ctrl-C that
    lands in llama.cpp's log callback is not dropped; exit 130, the samples kept."""
    data = _sums(tmp_path / "data.jsonl", 200)
    runs = tmp_path / "runs"
    args = ["tune", str(data), "-m", str(tiny_gguf), "--threads", "1", "-n", "4"]
    proc = start(*args, "--max-tokens", "4", "--budgets", "8", "--out", str(runs))
    wait_for_samples(proc, runs / "vote.jsonl", 2, timeout=120)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"interrupted: results kept in {runs}" in stderr and "Traceback" not in stderr
    kept = _samples(runs / "vote.jsonl")
    assert 2 <= len(kept) < 200 and _lines(runs / "vote.jsonl", "end")[-1]["interrupted"]
