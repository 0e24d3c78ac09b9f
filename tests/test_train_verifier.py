"""`reason train verifier` end to end on the tiny model: rollouts, Monte-Carlo PRM labels,
training, GGUF export, held-out check, registry, and the result as `--verifier prm:NAME`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_run import one_error

from reasoncli.solution_steps import step_prefixes
from reasoncli.train.verifier_data import (
    Graded,
    LabelCache,
    orm_examples,
    pending_prefixes,
    prm_examples,
    split_heldout,
)
from reasoncli.train.verifier_job import auc, within_question_auc
from tests.test_train import needs_training, reason, reason_here, user_models


def test_step_prefixes_cut_at_non_empty_lines() -> None:
    text = "19 + 15 = 34\nThe answer is 34.\n\n  \nThe answer is 34."
    assert step_prefixes(text) == [
        "19 + 15 = 34",
        "19 + 15 = 34\nThe answer is 34.",
        text,
    ]
    assert step_prefixes(" \n\n") == []


def test_a_prefix_that_states_its_answer_is_labelled_without_sampling(tmp_path: Path) -> None:
    """Only "7 * 11 = 77" needs completions; the prefix that already says "The answer is 77."
    is labelled by that answer, and the whole solution by its own grade."""
    right = Graded("What is 7 * 11?", "77", "7 * 11 = 77\nThe answer is 77.\nThe answer is 77.", 1)
    wrong = Graded("What is 7 * 11?", "77", "7 * 11 = 71\nThe answer is 71.\nThe answer is 77.", 1)
    cache = LabelCache(tmp_path / "labels.jsonl")
    todo = pending_prefixes([right, wrong], cache)
    assert [p for _, p in todo] == ["7 * 11 = 77", "7 * 11 = 71"]
    cache.add(right.question, "7 * 11 = 77", 0.75, ["77", "77", "77", "7"])
    labels = [(e.solution.splitlines()[-1], e.label) for e in prm_examples([right, wrong], cache)]
    # the unlabelled "7 * 11 = 71" is left out until it has its Monte-Carlo label
    assert labels == [
        ("7 * 11 = 77", 0.75),
        ("The answer is 77.", 1.0),
        ("The answer is 77.", 1.0),
        ("The answer is 71.", 0.0),
        ("The answer is 77.", 1.0),
    ]


def test_heldout_split_keeps_a_questions_solutions_together() -> None:
    graded = [Graded(f"q{i % 5}", "1", f"t{i}", float(i % 2)) for i in range(20)]
    train, held = split_heldout(graded, 2)
    assert {g.question for g in train}.isdisjoint({g.question for g in held})
    assert len({g.question for g in held}) == 2 and len(train) + len(held) == 20
    assert [e.label for e in orm_examples(held)] == [g.correct for g in held]


def test_auc_is_the_mann_whitney_rank_probability() -> None:
    assert auc([(0.9, 1), (0.1, 0)]) == 1.0
    assert auc([(0.1, 1), (0.9, 0)]) == 0.0
    assert auc([(0.5, 1), (0.5, 0)]) == 0.5
    assert auc([(0.5, 1)]) is None
    # easy question scored high, hard one low: pooled AUC rewards that, within each it is chance
    easy, hard = [(0.9, 1), (0.9, 0), (0.9, 1)], [(0.1, 0), (0.1, 1), (0.1, 0)]
    assert auc(easy + hard) == 0.6667 and within_question_auc([easy, hard]) == 0.5
    assert within_question_auc([[(0.2, 0), (0.7, 1)], [(0.3, 1)]]) == 1.0
    assert within_question_auc([[(0.3, 1)]]) is None


@pytest.fixture(scope="module")
def prm_run(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    needs_training()
    base = tmp_path_factory.mktemp("verifier")
    _, env = user_models(base)
    rollouts = base / "rollouts.jsonl"  # `reason rollouts` lines with two-step solutions
    with rollouts.open("w") as f:
        for i in range(4):
            texts = [
                f"{i} + 1 = {i + 1}\nThe answer is {i + 1}.",
                f"{i} + 1 = {i}\nThe answer is {i}.",
            ]
            row = {
                "prompt": [{"role": "user", "content": f"What is {i} + 1?"}],
                "completions": [[{"role": "assistant", "content": t}] for t in texts],
                "answer": str(i + 1),
                "reward_components": {"accuracy": [1.0, 0.0]},
            }
            f.write(json.dumps(row) + "\n")
    run_dir = base / "runs" / "tiny-prm"
    proc = reason_here(
        "train", "verifier", str(rollouts), "--kind", "prm", "-m", str(tiny_gguf),
        "--policy", str(tiny_gguf), "--out", "tiny-prm", "--run-dir", str(run_dir),
        "--steps", "2", "--batch-size", "2", "--heldout", "1", "--mc-completions", "2",
        "--mc-max-tokens", "4", "--export", "f16", "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {
        "summary": json.loads(proc.stdout),
        "env": env,
        "run_dir": run_dir,
        "rollouts": rollouts,
        "base": str(tiny_gguf),
    }


def test_prm_run_labels_trains_exports_and_registers(prm_run: dict[str, Any]) -> None:
    summary, run_dir = prm_run["summary"], prm_run["run_dir"]
    assert summary["model"] == "tiny-prm" and summary["kind"] == "prm"
    assert summary["step"] == 2 and not summary["interrupted"] and summary["examples"] > 0
    assert Path(summary["gguf"]).is_file()
    labels = [json.loads(line) for line in (run_dir / "labels.jsonl").read_text().splitlines()]
    for row in labels:  # each label is the share of 2 completions that reached the answer
        assert row["label"] in (0.0, 0.5, 1.0) and len(row["answers"]) == 2
    held = summary["heldout"]
    assert held["trained"]["questions"] == 1 and held["base"]["questions"] == 1
    assert "tiny-prm" in Path(summary["registered_in"]).read_text()
    assert json.loads((run_dir / "summary.json").read_text())["model"] == "tiny-prm"


def test_rerunning_a_finished_run_resumes_and_exports_again(prm_run: dict[str, Any]) -> None:
    """The same command again continues from the last checkpoint (labels and weights kept):
    nothing is left to train, so it exports, checks and registers the trained weights."""
    run_dir, env = prm_run["run_dir"], prm_run["env"]
    proc = reason_here(
        "train", "verifier", str(prm_run["rollouts"]), "--kind", "prm", "-m",
        prm_run["base"], "--policy", prm_run["base"], "--out", "tiny-prm", "--run-dir",
        str(run_dir), "--steps", "2", "--batch-size", "2", "--heldout", "1",
        "--mc-completions", "2", "--mc-max-tokens", "4", "--export", "f16", "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    # step 2, not 3: a finished run is not trained one step past --steps
    assert summary["step"] == 2 and not summary["interrupted"] and Path(summary["gguf"]).is_file()
    assert summary["heldout"] == prm_run["summary"]["heldout"]  # the same weights, scored again


def test_trained_prm_scores_steps_in_best_of_n(prm_run: dict[str, Any]) -> None:
    proc = reason(
        "ask", "What is 2 + 1?", "-m", str(prm_run["summary"]["gguf"]), "-s", "best-of-n",
        "-n", "2", "--max-tokens", "8", "--verifier", "prm:tiny-prm", "--aggregate", "min",
        "--json", env=prm_run["env"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    details = json.loads(proc.stdout)["details"]
    assert details["verifier"] == "prm:tiny-prm"
    assert all(s is None or 0.0 <= s <= 1.0 for s in details["scores"])


def test_bench_scores_every_branch_with_the_trained_verifier(
    prm_run: dict[str, Any], tmp_path: Path
) -> None:
    env, gguf = prm_run["env"], str(prm_run["summary"]["gguf"])
    data, out = tmp_path / "q.jsonl", tmp_path / "bon.jsonl"
    data.write_text("".join(
        json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
        for i in range(2)
    ))  # fmt: skip
    args = ["-m", gguf, "--threads", "1", "-s", "best-of-n,beam", "-n", "2", "--max-tokens", "6"]
    proc = reason(
        "bench", "run", str(data), *args, "--verifier", "prm:tiny-prm", "--aggregate", "min",
        "--beam-width", "1", "--step-tokens", "3", "-o", str(out), "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    run = next(r for r in rows if r["type"] == "run")
    assert (run["verifier"], run["aggregate"], run["pick"]) == ("prm:tiny-prm", "min", "best")
    assert (run["beam_width"], run["step_tokens"]) == (1, 3)
    samples = [r for r in rows if r["type"] == "sample"]
    assert sorted(r["strategy"] for r in samples) == ["beam", "beam", "best-of-n", "best-of-n"]
    beams = [r for r in samples if r["strategy"] == "beam"]
    assert all(len(r["answers"]) >= 1 for r in beams)  # the leaves of a one-beam search
    samples = [r for r in samples if r["strategy"] == "best-of-n"]
    for sample in samples:  # one score per branch, in the order of its answers
        assert len(sample["scores"]) == len(sample["answers"]) == 2
        assert all(s is None or 0.0 <= s <= 1.0 for s in sample["scores"])
    # a resume keeps the judge it was started with, and a vote has no judge to take
    one_error(
        reason("bench", "run", "--resume", str(out), "--verifier", "confidence", env=env),
        2,
        "--verifier confidence differs from prm:tiny-prm",
    )
    one_error(
        reason("bench", "run", str(data), "-m", gguf, "--verifier", "prm:tiny-prm", env=env),
        2,
        "--verifier applies to",
    )


def test_bad_input_exits_with_one_line(prm_run: dict[str, Any], tmp_path: Path) -> None:
    env, rollouts = prm_run["env"], str(prm_run["rollouts"])
    one_error(reason("train", "verifier", rollouts, "--kind", "xrm", env=env), 2, "--kind")
    one_error(reason("train", "verifier", str(tmp_path / "nope.jsonl"), env=env), 4, "no such")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    one_error(reason("train", "verifier", str(bad), env=env), 4, "not a `reason rollouts` line")
    one_error(reason("train", "verifier", rollouts, "--heldout", "99", env=env), 4, "--heldout")
