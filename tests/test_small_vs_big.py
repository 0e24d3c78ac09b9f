"""benchmarks/small_vs_big.py: the maj@k, best-of-k and weighted-vote curves the README's
Results table is computed with, on hand-made bench samples."""

from __future__ import annotations

from benchmark_script import load_benchmark


def sample(answers: list[str | None], scores: list[float | None], right: str) -> dict:
    """A bench record: branch i wrote 10 + i tokens, so branches finish in branch order."""
    keys = list(dict.fromkeys(a for a in answers if a))
    groups = [{"answer": a, "correct": a == right} for a in keys]
    return {
        "strategy": "best-of-n",
        "branches": len(answers),
        "answers": answers,
        "labels": [keys.index(a) if a else None for a in answers],
        "scores": scores,
        "groups": groups,
        "correct": False,  # the strategy's own pick is not what maj@k reads
        "branch_tokens": [10 + i for i in range(len(answers))],
        "finish_reasons": ["stop"] * len(answers),
    }


def test_best_of_k_weighted_and_majority_read_the_first_k_branches() -> None:
    m = load_benchmark("small_vs_big")
    # two wrong "5"s outvote one right "6", which the judge scores highest
    row = sample(["5", "6", "5", None], [0.3, 0.9, 0.2, 1.0], right="6")
    assert m.right_at(row, 4, "best") == 1.0  # an unanswered branch can't be the pick
    assert m.right_at(row, 4, "weighted") == 1.0  # 0.9 > 0.3 + 0.2
    assert m.right_at(row, 4, "maj") == 0.0
    # a best-of-n file's own `correct` is not used; tokens are the first k branches'
    assert m.Cell("c", 4, "maj", [row]).accuracy() == (0, 46.0)
    assert m.Cell("c", 4, "best", [row]).accuracy() == (1, 46.0)
    assert m.Cell("c", 1, "best", [row]).accuracy() == (0, 10.0)
    tied = sample(["7", "8", "8"], [0.5, 0.5, 0.5], right="8")
    assert m.right_at(tied, 3, "best") == 1.0  # a tie of scores: the vote among them
    unscored = sample(["9", "4"], [None, float("nan")], right="9")
    assert m.right_at(unscored, 2, "weighted") == 1.0  # all weigh 0: the first finished


def test_a_tie_goes_to_the_answer_that_finished_first_as_in_reason_vote() -> None:
    m = load_benchmark("small_vs_big")
    row = sample(["5", "6"], [None, None], right="6")
    assert m.right_at(row, 1, "maj") == 0.0
    assert m.right_at(row, 2, "maj") == 0.0  # branch 0 finished first: "5"
    row["branch_tokens"] = [30, 20]  # now branch 1 finishes first
    assert m.right_at(row, 2, "maj") == 1.0
    row["branch_tokens"], row["finish_reasons"] = [20, 20], ["eos", "stop"]
    assert m.right_at(row, 2, "maj") == 1.0  # the end-of-generation token costs one more step


def test_a_scored_file_gives_three_curves_and_a_vote_file_one() -> None:
    m = load_benchmark("small_vs_big")
    scored = [sample(["1", "2"], [0.1, 0.8], right="2")]
    names = [r[0] for r in m.table({"bon": scored})]
    assert dict.fromkeys(names) == dict.fromkeys(["bon maj", "bon best-of", "bon weighted"])
    vote = [{k: v for k, v in scored[0].items() if k != "scores"} | {"strategy": "vote"}]
    assert {r[0] for r in m.table({"vote": vote})} == {"vote"}


def test_paired_gain_is_the_mean_difference_on_the_same_questions() -> None:
    m = load_benchmark("small_vs_big")
    won = sample(["5", "6", "5"], [0.1, 0.9, 0.2], right="6")  # the judge fixes the vote
    tie = sample(["6", "6", "5"], [0.5, 0.5, 0.9], right="6")  # the judge breaks a right vote
    assert m.right_at(won, 3, "best") == 1.0 and m.right_at(won, 3, "maj") == 0.0
    assert m.right_at(tie, 3, "best") == 0.0 and m.right_at(tie, 3, "weighted") == 1.0
    assert m.paired_gain([won] * 10, 3, "best") == (1.0, 1.0, 1.0)
    mean, lo, hi = m.paired_gain([won, tie] * 10, 3, "best")
    assert mean == 0.0 and lo < 0.0 < hi


def search_row(qid: str, branches: int, correct: bool, tokens: int) -> dict:
    return {"id": qid, "strategy": "beam", "branches": branches, "correct": correct,
            "tokens": tokens}  # fmt: skip


def test_a_search_file_gives_one_point_per_n_and_its_gain_over_a_vote_is_paired() -> None:
    m = load_benchmark("small_vs_big")
    beam = [search_row(f"q{i}", n, i < n // 4, 7 * n) for n in (4, 8) for i in range(4)]
    points = {(r[0], r[1]): (r[3], r[6]) for r in m.table({"beam": beam})}
    assert points == {("beam", 4): (0.25, 28.0), ("beam", 8): (0.5, 56.0)}
    # the vote gets q0 right at every k and nothing else; q9 has no beam row and is skipped
    vote = [
        sample(["6"] * 8, [None] * 8, right="6" if i == 0 else "1") | {"id": f"q{i}"}
        for i in (0, 1, 2, 3, 9)
    ]
    beam8 = next(c for c in m.cells("beam", beam) if c.k == 8)
    mean, lo, hi = m.gain_over(beam8, vote)  # beam right on q0, q1; the vote on q0
    assert mean == 0.25 and lo <= 0.25 <= hi
    two = m.cells("s", beam + [search_row("q0", 4, True, 9) | {"strategy": "dvts"}])
    assert {c.curve for c in two} == {"s beam", "s dvts"}
