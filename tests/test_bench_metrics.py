"""pass@k / maj@k from subsets, the Wilson interval, and the report built from a results file."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from reasoncli.bench import metrics
from reasoncli.bench.metrics import maj_at_k, maj_at_k_brute, pass_at_k, subset_ks, wilson


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [  # textbook values (e.g. Newcombe 1998; Wikipedia's "Binomial proportion confidence interval")
        (5, 10, 0.2366, 0.7634),
        (1, 10, 0.0179, 0.4042),
        (0, 10, 0.0, 0.2775),
        (0, 20, 0.0, 0.1611),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_known_values(successes: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson(successes, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


def test_wilson_without_data_is_uninformative() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 1, 0.25),
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (8, 0, 8, 0.0),
        (8, 7, 2, 1.0),  # only one wrong branch: any pair has a right one
        (16, 4, 16, 1.0),
    ],
)
def test_pass_at_k_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("labels", "correct", "k", "order", "expected"),
    [
        # groups: 0 right (2 branches), 1 wrong. A tie goes to the branch that finished first.
        ([0, 0, 1], [True, False], 1, None, 2 / 3),
        ([0, 0, 1], [True, False], 2, None, 1.0),  # {0,1} wins; {0,2}, {1,2}: 0 finished first
        ([0, 0, 1], [True, False], 2, [2, 1, 0], 1 / 3),  # the wrong branch finishes first
        ([0, 0, 1], [True, False], 3, None, 1.0),
        # two unanswered branches: {right, wrong} -> right (first); {right, -} x2; over 6.
        ([0, 1, None, None], [True, False], 2, None, 3 / 6),
        ([0, 1, None, None], [True, False], 2, [1, 0, 2, 3], 2 / 6),
        ([0, 1, None, None], [True, False], 1, None, 0.25),
        ([None, None], [], 1, None, 0.0),
        ([1, 1, 1, 0], [True, False], 3, None, 0.0),  # the right answer never wins with one vote
    ],
)
def test_maj_at_k_hand_computed(
    labels: list[int | None],
    correct: list[bool],
    k: int,
    order: list[int] | None,
    expected: float,
) -> None:
    assert maj_at_k(labels, correct, k, order=order) == pytest.approx(expected)
    assert maj_at_k_brute(labels, correct, k, order) == pytest.approx(expected)


def test_maj_at_k_exact_and_sampled_agree_with_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    for _ in range(20):
        n = rng.randint(1, 9)
        groups = rng.randint(1, 4)
        labels = [rng.choice([*range(groups), None]) for _ in range(n)]
        correct = [rng.random() < 0.4 for _ in range(groups)]
        order = rng.sample(range(n), n)
        for k in range(1, n + 1):
            exact = maj_at_k(labels, correct, k, order=order)
            assert exact == pytest.approx(maj_at_k_brute(labels, correct, k, order))
    monkeypatch.setattr(metrics, "EXACT_LIMIT", 0)  # force the sampled path
    labels, correct = [0, 0, 0, 1, 1, 2, None, 1], [True, False, False]
    for k in (2, 3, 5):
        assert maj_at_k(labels, correct, k) == pytest.approx(
            maj_at_k_brute(labels, correct, k), abs=0.03
        )


def test_subset_ks() -> None:
    assert subset_ks(16) == [1, 2, 4, 8, 16]
    assert subset_ks(6) == [1, 2, 4, 6]
    assert subset_ks(1) == [1]


def _sample(
    qid: str, budget: str, labels: list[int | None], right: list[bool], **kw: object
) -> dict:
    groups = [
        {"answer": str(i), "count": labels.count(i), "correct": r} for i, r in enumerate(right)
    ]
    correct = kw.pop("correct", False)
    return {
        "type": "sample",
        "id": qid,
        "strategy": "vote",
        "budget": budget,
        "branches": len(labels),
        "budget_tokens": None,
        "answer": "0",
        "correct": correct,
        "labels": labels,
        "groups": groups,
        "tokens": 10 * len(labels),
        "prompt_tokens": 50,
        "gen_s": 0.8,
        "grade_s": 0.05,
        "wall_s": 1.0,
        **kw,
    }


def test_report_from_a_hand_written_results_file(tmp_path: Path) -> None:
    from reasoncli.bench.render import curve_lines, render_report
    from reasoncli.bench.report import build_report

    lines = [
        {"type": "run", "dataset": "d.jsonl", "format": "gsm8k", "model": "m", "load_s": 0.5},
        _sample("q1", "n=1", [0], [True], correct=True),
        _sample("q1", "n=4", [0, 0, 1, None], [True, False], correct=True),
        _sample("q2", "n=1", [None], []),
        _sample("q2", "n=4", [0, 1, 1, 1], [True, False]),
        _sample("q2", "n=4", [0, 0, 0, 0], [True]),  # a duplicate key: ignored
        {"type": "end", "samples": 4, "wall_s": 5.0},
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"type": "sam')
    report = build_report(path)
    assert [c.budget for c in report.cells] == ["n=1", "n=4"]
    one, four = report.cells
    assert (one.questions, one.correct, one.accuracy) == (2, 1, 0.5)
    assert (one.ci_low, one.ci_high) == pytest.approx(wilson(1, 2))
    assert four.n == 4 and [p.k for p in four.subsets] == [1, 2, 4]
    # q1: c=2 of 4; q2: c=1 of 4 -> pass@2 = mean(1 - C(2,2)/C(4,2), 1 - C(3,2)/C(4,2))
    assert four.subsets[1].pass_at == pytest.approx((1 - 1 / 6 + 1 - 3 / 6) / 2)
    assert four.subsets[0].maj_at == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert four.maj_at_n == pytest.approx((1.0 + 0.0) / 2)
    assert four.subsets[1].tokens == pytest.approx(20.0)
    for p in four.subsets:
        assert p.pass_ci[0] <= p.pass_at <= p.pass_ci[1] and p.maj_ci[0] <= p.maj_at <= p.maj_ci[1]
    assert report.overhead == pytest.approx(1 - 5 * 0.8 / 5.0)  # every sample run took time
    assert any("repeated" in n for n in report.notes)
    assert any("unfinished last line" in n for n in report.notes)
    text = "\n".join(curve_lines(report))
    assert "●" in text and "·" in text and "tokens" in text
    from rich.console import Console

    out = io.StringIO()
    render_report(report, Console(file=out, width=120, color_system=None))
    rendered = out.getvalue()
    assert "95% CI (Wilson)" in rendered and "50.0%" in rendered
    assert "subsets" in rendered and "bench overhead: 20.0%" in rendered
    assert json.loads(json.dumps(report.to_json()))["cells"][1]["n"] == 4


def test_bootstrap_interval_of_a_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from reasoncli.bench import metrics
    from reasoncli.bench.metrics import bootstrap_mean

    coin = np.array([0.0, 1.0] * 100)
    mean, low, high = bootstrap_mean(coin)
    # the normal interval for p = 0.5, n = 200 is 0.5 ± 0.069
    assert mean == 0.5 and low == pytest.approx(0.431, abs=0.01)
    assert high == pytest.approx(0.569, abs=0.01)
    same = np.full(50, 0.25)
    assert bootstrap_mean(same) == pytest.approx((0.25, 0.25, 0.25))
    # the draws depend on the seed and the length only: vectors over the same questions pair
    varied = np.linspace(0.0, 1.0, 37) ** 2
    assert bootstrap_mean(varied, seed=3) == bootstrap_mean(varied, seed=3)
    assert bootstrap_mean(varied, seed=3) != bootstrap_mean(varied, seed=4)
    # drawing in small blocks (large sets) is still the same bootstrap
    monkeypatch.setattr(metrics, "_BOOTSTRAP_BLOCK", 200 * 7)  # 7 resamples per block
    assert bootstrap_mean(coin) == pytest.approx((mean, low, high), abs=0.01)
    paired = bootstrap_mean(coin - coin)
    assert paired == (0.0, 0.0, 0.0)
