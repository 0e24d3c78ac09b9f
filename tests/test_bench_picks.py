"""The analysis's maj@k is what `vote -n k` answers: the same branches, aggregated by the tool's
own vote in the order a k-branch run finishes them (ties go to the branch that finished first).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reasoncli.answers import is_incomplete, is_unevaluated, normalize_answer
from reasoncli.bench.picks import finish_order, first_k_pick, pick_is_right
from reasoncli.bench.progress import NullProgress
from reasoncli.bench.runner import BenchRequest, prepare_bench

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def samples(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("type") == "sample"]


def test_finish_order_is_steps_then_branch_order() -> None:
    # 5 tokens then end-of-generation finishes at step 6, after a branch stopped at 5 tokens
    assert finish_order([5, 5, 3, 5], ["eos", "stop", "length", "stop"]) == [2, 1, 3, 0]


@pytest.mark.parametrize(
    "name", ["arith2-heldout200-t10-vote16.jsonl", "arith2-heldout200-gemma-vote8.jsonl"]
)
def test_the_whole_run_reproduces_every_saved_vote(name: str) -> None:
    """At k = N the reconstruction must give what `reason vote` itself answered; these files
    have many ties (in branch order instead, 13 and 72 of the 200 answers would differ).
    Two votes per file held a cut-off "18 +" or an unworked "1 - 11" that the grading policy no
    longer pools with 18 or -10: those are left out."""
    checked = 0
    for record in samples(RESULTS / name):
        if any(a and (is_incomplete(a) or is_unevaluated(a)) for a in record["answers"]):
            continue
        answer, _ = first_k_pick(record, record["branches"])
        assert answer == normalize_answer(record["answer"]), record["id"]
        assert pick_is_right(record, record["branches"]) == record["correct"]
        checked += 1
    assert checked == 198


@pytest.mark.parametrize(
    "name", ["arith2-heldout200-t10-vote16.jsonl", "arith2-heldout200-gemma-vote8.jsonl"]
)
def test_the_reports_maj_at_n_is_the_runs_own_accuracy(name: str) -> None:
    """`bench report` estimates maj@k over random subsets with the same tie rule, so at k = N
    it is exactly what the vote answered (with 1/t credit for a t-way tie it was not)."""
    from reasoncli.bench.report import build_report

    (cell,) = build_report(RESULTS / name).cells
    assert cell.maj_at_n == pytest.approx(cell.accuracy)


QUESTIONS = {
    "Sam has 14 apples and eats 5. How many are left?": "9",
    "What is 23 + 19?": "42",
    "A box holds 6 eggs. How many eggs are in 7 boxes?": "42",
    "Mia had 40 stickers and gave away 13. How many does she have?": "27",
    "What is 96 divided by 8?": "12",
    "Tom reads 12 pages a day for 4 days. How many pages?": "48",
}


@pytest.fixture(scope="module")
def embedded_session(smollm2_path: Path) -> Iterator[Any]:
    from reasoncli.cli.runner import ModelRequest, load_session

    session = load_session(ModelRequest(str(smollm2_path), threads=1))
    yield session
    session.close()


@pytest.mark.embedded
def test_maj_at_k_from_an_n_branch_run_is_what_vote_n_k_answers(
    tmp_path: Path, embedded_session: Any
) -> None:
    """Real `vote -n 2`, `-n 3` and `-n 6` runs of the embedded model in one bench file: the
    analysis's maj@2 and maj@3 over the 6-branch rows equal the 2- and 3-branch runs' answers."""
    data = tmp_path / "q.jsonl"
    data.write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QUESTIONS.items())
    )
    out = tmp_path / "run.jsonl"
    job = prepare_bench(
        BenchRequest(data=str(data), branches=[2, 3, 6], max_tokens=48, out=out, model="smollm2")
    )
    job.run(embedded_session, NullProgress())
    rows = {(r["id"], r["branches"]): r for r in samples(out)}
    ties = 0
    for qid in {qid for qid, _ in rows}:
        full = rows[qid, 6]
        for k in (2, 3):
            run = rows[qid, k]
            assert run["branch_tokens"] == full["branch_tokens"][:k]  # the same branches
            assert run["answers"] == full["answers"][:k]
            answer, _ = first_k_pick(full, k)
            assert answer == (run["answer"] and normalize_answer(run["answer"])), (qid, k)
            assert pick_is_right(full, k) == run["correct"]
            counts = [g["count"] for g in run["groups"]]
            ties += len(counts) > 1 and counts.count(max(counts)) > 1
    assert ties > 0  # the rule was exercised, not just unanimous votes
