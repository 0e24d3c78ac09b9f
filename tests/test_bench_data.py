"""Dataset formats are detected; bad data gets one error line naming the file and line (exit 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import run_cli

from reasoncli.bench.datasets import load_dataset
from reasoncli.errors import InputError


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_gsm8k(tmp_path: Path) -> None:
    data = load_dataset(
        write_jsonl(
            tmp_path / "g.jsonl",
            [
                {"question": "Q1?", "answer": "So 3+4 = <<3+4=7>>7.\n#### 7"},
                {"question": "Q2?", "answer": "Many.\n#### 1,000"},
            ],
        )
    )
    assert data.format == "gsm8k"
    assert [(i.id, i.question, i.expected) for i in data.items] == [
        ("line-1", "Q1?", "7"),
        ("line-2", "Q2?", "1000"),
    ]


def test_math_boxed_and_answer_field(tmp_path: Path) -> None:
    data = load_dataset(
        write_jsonl(
            tmp_path / "m.jsonl",
            [
                {"problem": "Half?", "solution": "It is $\\boxed{\\frac{1}{2}}$."},
                {"problem": "P", "solution": "long", "answer": "3\\sqrt{2}", "unique_id": "x/1"},
            ],
        )
    )
    assert data.format == "math"
    assert [i.expected for i in data.items] == ["\\frac{1}{2}", "3\\sqrt{2}"]
    assert data.items[1].id == "x/1"


def test_generic_and_limit(tmp_path: Path) -> None:
    rows = [{"id": i, "question": f"{i}+1?", "answer": i + 1} for i in range(5)]
    data = load_dataset(write_jsonl(tmp_path / "q.jsonl", rows), limit=2)
    assert data.format == "generic"
    assert [(i.id, i.expected) for i in data.items] == [("0", "1"), ("1", "2")]


def test_multiple_choice_letter_index_text_and_dict(tmp_path: Path) -> None:
    data = load_dataset(
        write_jsonl(
            tmp_path / "mc.jsonl",
            [
                {"question": "Red?", "choices": ["blue", "red"], "answer": "B"},
                {"question": "Two?", "choices": ["1", "2", "3"], "answer": 1},
                {"question": "Sky?", "choices": ["green", "blue"], "answer": "blue"},
                {"question": "C?", "choices": {"A": "x", "B": "y", "C": "z"}, "answer": "(c)"},
            ],
        )
    )
    assert data.format == "mc"
    assert [i.expected for i in data.items] == ["B", "B", "B", "C"]
    assert all(i.multiple_choice for i in data.items)
    assert "A) blue\nB) red" in data.items[0].question


def test_shipped_sample_by_name() -> None:
    data = load_dataset("gsm8k-sample")
    assert data.format == "gsm8k" and len(data.items) == 50
    assert data.items[0].expected == "72"
    assert (data.path.parent / "LICENSE-gsm8k").read_text().startswith("MIT License")


@pytest.mark.parametrize(
    ("rows", "where", "pattern"),
    [
        (['{"question": "a", "answer": "#### 1"}', "{not json"], ":2:", "not valid JSON"),
        (['{"question": "a", "answer": "#### 1"}', '{"question": "b"}'], ":2:", "'answer'"),
        (
            ['{"question": "a", "answer": "#### 1"}', '{"question": "b", "answer": "2"}'],
            ":2:",
            "no final '#### N'",
        ),  # fmt: skip
        (['{"prompt": "a", "completion": "b"}'], ":1:", "unknown data format"),
        (['{"problem": "a", "solution": "no box"}'], ":1:", "\\boxed"),
        (['{"question": "a", "choices": ["x"], "answer": "A"}'], ":1:", "2 to 5 options"),
        (['{"question": "a", "choices": ["x", "y"], "answer": "D"}'], ":1:", "letter A-B"),
        (
            ['{"id": 1, "question": "a", "answer": 1}', '{"id": 1, "question": "b", "answer": 2}'],
            ":2:",
            "duplicate id",
        ),  # fmt: skip
        (["[1, 2]"], ":1:", "JSON object"),
        (["", "  "], "", "empty"),
    ],
)
def test_bad_data_names_the_line(tmp_path: Path, rows: list[str], where: str, pattern: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError) as info:
        load_dataset(path)
    message = str(info.value)
    assert f"{path}{where}" in message and pattern in message


def reason(*args: str) -> tuple[int, str, str]:
    """The CLI in-process (these errors come before any model loads): code, stdout, stderr."""
    run = run_cli(*args, columns=None)
    return run.returncode, run.stdout, run.stderr


def test_cli_bad_input_exits_4_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "answer": "1"}\n{"question": "q2", "answer": \n')
    for args, pattern in [
        (["bench", str(empty)], f"{empty}: no questions"),
        (["bench", str(broken), "-n", "1,2"], f"{broken}:2: not valid JSON"),
        (["bench", str(tmp_path / "missing.jsonl")], "data file not found"),
        (["rollouts", str(broken), "--out", str(tmp_path / "g.jsonl")], f"{broken}:2:"),
        (["bench", "report", str(broken)], f"{broken}:2: not valid JSON"),
    ]:
        code, out, err = reason(*args)
        assert code == 4, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and pattern in lines[0]
        assert out == ""


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "q", "answer": "1"}\n')
    existing = tmp_path / "r.jsonl"
    existing.write_text('{"type": "run"}\n')
    for args, pattern in [
        (["bench", str(data), "-n", "1,x"], "comma-separated"),
        (["bench", str(data), "-s", "nope"], "unknown strategy"),
        (["bench", str(data), "-n", "1,2", "--budget-tokens", "100,200"], "not to both"),
        (["bench", str(data), "--out", str(existing)], "--resume"),
        (["rollouts", str(data), "--out", str(existing)], "--resume"),
        (["rollouts", str(data)], "--out"),
    ]:
        code, out, err = reason(*args)
        assert code == 2, (args, err)
        assert pattern in err and out == ""


def test_budget_grid_and_how_token_budgets_reach_strategies() -> None:
    from reasoncli.bench.plan import BenchPlan, Budget, budget_grid
    from reasoncli.errors import UsageError

    assert budget_grid(None, None) == [Budget(8)]
    assert [b.label for b in budget_grid([1, 4, 4], None)] == ["n=1", "n=4"]
    assert [b.label for b in budget_grid([16], [4000, 16000])] == [
        "n=16 4000 tok",
        "n=16 16000 tok",
    ]
    with pytest.raises(UsageError):
        budget_grid([1, 2], [100, 200])
    with pytest.raises(UsageError):
        budget_grid([0], None)

    # `auto` plans with a token budget itself: it reads `budget_tokens`
    plan = BenchPlan(["vote", "think", "auto"], [Budget(tokens=4000)], max_tokens=512)
    vote, think, planner = (plan.options(s, plan.budgets[0], multiple_choice=False) for s in
                            plan.strategies)  # fmt: skip
    assert (vote.branches, vote.max_tokens, vote.budget_tokens) == (7, 512, None)
    assert (think.max_tokens, think.budget_tokens) == (4000, None)
    assert (planner.budget_tokens, planner.max_tokens) == (4000, 512)
