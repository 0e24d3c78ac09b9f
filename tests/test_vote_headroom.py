"""benchmarks/vote_headroom.py: the per-question shares behind #27's 'why no policy pays'."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_script import load_benchmark

vote_headroom = load_benchmark("vote_headroom")


def sample(qid: str, answers: list[str], right: str) -> dict:
    counts = {a: answers.count(a) for a in answers}
    groups = [{"answer": a, "count": c, "correct": a == right} for a, c in counts.items()]
    return {"type": "sample", "id": qid, "answers": answers, "groups": groups}


def test_columns_count_majority_plurality_and_minority(tmp_path: Path) -> None:
    rows = [
        {"type": "run", "questions": 4},
        sample("d1-a", ["5", "5", "5", "4"], "5"),  # right majority
        sample("d1-b", ["5", "4", "3", "2"], "5"),  # right plurality (a tie), not majority
        sample("d2-a", ["4", "4", "4", "5"], "5"),  # right, not the plurality
        sample("d2-b", ["4", "4", "3", "3"], "5"),  # no right branch
    ]
    path = tmp_path / "vote.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shares = vote_headroom.headroom(path)
    assert shares["d1"] == [(0.75, True), (0.25, True)]
    assert shares["d2"] == [(0.25, False), (0.0, False)]
    table = vote_headroom.report(shares, 4)
    assert "| d1 | 2 | 50.0% | 100.0% | 50.0% | 50.0% | 0.0% |" in table
    assert "| d2 | 2 | 12.5% | 50.0% | 0.0% | 0.0% | 50.0% |" in table
    assert "| all | 4 | 31.2% | 75.0% | 25.0% | 25.0% | 25.0% |" in table
