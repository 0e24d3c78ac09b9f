"""`reason bench compare`: paired before/after statistics, verdicts, and the CLI on real runs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from cli_run import reason, run_cli

from reasoncli.bench.compare import compare_files, gain_metric
from reasoncli.bench.metrics import wilson
from reasoncli.errors import InputError, UsageError


def _sample(qid: str, labels: list[int | None], right: list[bool], **kw: Any) -> dict[str, Any]:
    """A vote sample: `labels[i]` is branch i's answer group, `right[g]` whether group g is
    right; the vote's own answer is right when its largest group is."""
    counts = [labels.count(g) for g in range(len(right))]
    top = max(range(len(right)), key=lambda g: counts[g]) if right else None
    return {
        "type": "sample",
        "id": qid,
        "digest": kw.pop("digest", f"d-{qid}"),
        "strategy": "vote",
        "budget": f"n={len(labels)}",
        "answer": None if top is None else str(top),
        "correct": top is not None and right[top],
        "labels": labels,
        "groups": [{"answer": str(g), "correct": r} for g, r in enumerate(right)],
        "tokens": 10 * len(labels),
        **kw,
    }


def _write(path: Path, model: str, samples: list[dict[str, Any]]) -> Path:
    header = {"type": "run", "dataset": "held.jsonl", "format": "generic", "model": model}
    path.write_text("".join(json.dumps(r) + "\n" for r in [header, *samples]))
    return path


def _row(cell: Any, metric: str) -> Any:
    return next(r for r in cell.rows if r.metric == metric)


def test_paired_difference_and_voting_gain(tmp_path: Path) -> None:
    # base: each question has one right branch of four, never the majority
    base = [_sample(f"q{i}", [0, 1, 1, 1], [True, False]) for i in range(40)]
    # trained: three right branches of four, always the majority
    trained = [_sample(f"q{i}", [0, 0, 0, 1], [True, False]) for i in range(40)]
    a = _write(tmp_path / "base.jsonl", "base-model", base)
    b = _write(tmp_path / "trained.jsonl", "trained-model", trained)
    comparison = compare_files([a, b])
    assert comparison.labels == ["base-model", "trained-model"]
    (cell,) = comparison.cells
    assert (cell.strategy, cell.budget, cell.questions, cell.n) == ("vote", "n=4", 40, 4)
    assert [r.metric for r in cell.rows] == ["accuracy", "pass@1", "maj@4", "pass@4",
                                             gain_metric(4)]  # fmt: skip
    acc = _row(cell, "accuracy")
    assert (acc.values[0].value, acc.values[1].value) == (0.0, 1.0)
    assert (acc.values[1].low, acc.values[1].high) == pytest.approx(wilson(40, 40))
    pass1 = _row(cell, "pass@1")
    assert [v.value for v in pass1.values] == pytest.approx([0.25, 0.75])
    assert pass1.deltas[0] is None
    # every question moved by the same amount: the paired interval has no width
    d = pass1.deltas[1]
    assert (d.value, d.low, d.high) == pytest.approx((0.5, 0.5, 0.5))
    assert [v.value for v in _row(cell, "pass@4").values] == pytest.approx([1.0, 1.0])
    gain = _row(cell, gain_metric(4))
    assert [v.value for v in gain.values] == pytest.approx([-0.25, 0.25])
    assert gain.deltas[1].value == pytest.approx(0.5) and gain.deltas[1].excludes_zero()
    assert [p.k for p in cell.curves[1]] == [1, 2, 4]
    assert cell.curves[1][-1].maj_at.value == pytest.approx(1.0)
    assert cell.mean_tokens == [40.0, 40.0]

    from rich.console import Console

    from reasoncli.bench.render import render_comparison

    out = io.StringIO()
    render_comparison(comparison, Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert "vote n=4: 40 questions in every file" in text
    assert "Δ trained-model − base-model" in text and "+50.0 pts (+50.0 to +50.0)" in text
    assert "voting gains more on trained-model than on base-model (+50.0 pts" in text


def test_noise_is_not_called_a_gain(tmp_path: Path) -> None:
    # the same mixed questions in both files, with the two halves swapped: equal on average
    mixed = [[0, 0, 1, 1], [0, 0, 0, 1], [0, 1, 1, 1], [0, 0, 0, 0]]
    a = [_sample(f"q{i}", mixed[i % 4], [True, False]) for i in range(40)]
    b = [_sample(f"q{i}", mixed[(i + 2) % 4], [True, False]) for i in range(40)]
    comparison = compare_files([_write(tmp_path / "a.jsonl", "m", a),
                                _write(tmp_path / "b.jsonl", "m", b)])  # fmt: skip
    assert comparison.labels == ["a.jsonl", "b.jsonl"]  # same model: named by file
    (cell,) = comparison.cells
    delta = _row(cell, gain_metric(4)).deltas[1]
    assert delta.value == pytest.approx(0.0) and not delta.excludes_zero()
    from reasoncli.bench.render import verdicts

    assert "within the noise" in verdicts(comparison, cell)[-1]


def test_only_shared_questions_with_the_same_text_are_paired(tmp_path: Path) -> None:
    a = [_sample(f"q{i}", [0, 1], [True, False]) for i in range(6)]
    b = [_sample(f"q{i}", [0, 0], [True, False]) for i in range(1, 6)]  # q0 missing
    b[0]["digest"] = "another question"  # q1's text changed
    b.append(_sample("q1", [0, 1], [True, False], budget="n=3"))  # another budget: not paired
    comparison = compare_files([_write(tmp_path / "a.jsonl", "x", a),
                                _write(tmp_path / "b.jsonl", "y", b)])  # fmt: skip
    (cell,) = comparison.cells
    assert cell.questions == 4
    notes = " | ".join(comparison.notes)
    assert "left out 1 question(s) whose text differs by file" in notes
    assert "left out 1 question(s) missing from some file" in notes


def test_single_branch_runs_compare_accuracy_only(tmp_path: Path) -> None:
    a = [_sample(f"q{i}", [0], [i % 2 == 0]) for i in range(10)]
    b = [_sample(f"q{i}", [0], [True]) for i in range(10)]
    comparison = compare_files([_write(tmp_path / "a.jsonl", "x", a),
                                _write(tmp_path / "b.jsonl", "y", b)])  # fmt: skip
    (cell,) = comparison.cells
    assert [r.metric for r in cell.rows] == ["accuracy", "pass@1"]
    assert _row(cell, "accuracy").deltas[1].value == pytest.approx(0.5)
    from reasoncli.bench.render import verdicts

    assert verdicts(comparison, cell) == []


def test_refusals(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", "x", [_sample("q1", [0, 1], [True, False])])
    with pytest.raises(UsageError, match="two or more"):
        compare_files([a])
    other = _write(tmp_path / "b.jsonl", "y", [_sample("q1", [0], [True])])
    with pytest.raises(InputError, match=r"no strategy and budget was run in every file"):
        compare_files([a, other])
    disjoint = _write(tmp_path / "c.jsonl", "y", [_sample("q9", [0, 1], [True, False])])
    with pytest.raises(InputError, match="no question was run in every file"):
        compare_files([a, disjoint])
    empty = tmp_path / "e.jsonl"
    empty.write_text('{"type": "run"}\n')
    with pytest.raises(InputError, match="no bench samples"):
        compare_files([a, empty])


def test_cli_compares_two_real_runs(tiny_gguf: Path, tmp_path: Path) -> None:
    runs = []
    for seed in ("0", "7"):
        out = tmp_path / f"seed{seed}.jsonl"
        proc = reason("bench", "gsm8k-sample", "-m", str(tiny_gguf), "--threads", "1",
                       "--limit", "3", "-n", "2", "--max-tokens", "4", "--seed", seed,
                       "--out", str(out), "--json")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs.append(str(out))
    proc = run_cli("bench", "compare", *runs, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["labels"] == ["seed0.jsonl", "seed7.jsonl"]
    (cell,) = data["cells"]
    assert (cell["strategy"], cell["budget"], cell["questions"]) == ("vote", "n=2", 3)
    assert [r["metric"] for r in cell["rows"]][:2] == ["accuracy", "pass@1"]
    for row in cell["rows"]:
        for est in row["values"]:
            assert est["low"] <= est["value"] <= est["high"]
    proc = run_cli("bench", "compare", *runs)
    assert proc.returncode == 0, proc.stderr
    assert "3 questions in every file" in proc.stdout
    assert "Δ seed7.jsonl − seed0.jsonl" in proc.stdout
    pytest.importorskip("matplotlib")
    png = tmp_path / "compare.png"
    proc = run_cli("bench", "compare", *runs, "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {png}" in proc.stdout


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", "x", [_sample("q1", [0, 1], [True, False])])
    proc = run_cli("bench", "compare", str(a))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("bench", "compare", str(a), str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing.jsonl" in proc.stderr


def test_one_model_name_with_two_weight_files_is_pointed_out(tmp_path: Path) -> None:
    """How the difficulty-1 vote-16 and best-of-16 runs came to draw different branches: the
    model was re-exported under its name. The run line's SHA-256 shows it."""
    samples = [_sample(f"q{i}", [0, 0, 1], [True, False]) for i in range(5)]
    paths = []
    for name, digest in (("a.jsonl", "11" * 32), ("b.jsonl", "22" * 32), ("c.jsonl", "22" * 32)):
        path = _write(tmp_path / name, "smollm2-arith-t10", samples)
        header, *rest = path.read_text().splitlines(keepends=True)
        run = json.loads(header) | {"model_file": {"sha256": digest}}
        path.write_text(json.dumps(run) + "\n" + "".join(rest))
        paths.append(path)
    notes = compare_files(paths[:2]).notes
    assert any("2 different model files" in n for n in notes)
    assert not any("model files" in n for n in compare_files(paths[1:]).notes)
