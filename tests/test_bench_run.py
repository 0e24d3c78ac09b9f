"""`reason bench` and `reason rollouts` end to end on the tiny model, with Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_run import run_cli, start, wait_for_samples

from reasoncli.bench.progress import NullProgress
from reasoncli.bench.runner import BenchRequest, prepare_bench, sample_key

FORMATS = {
    "gsm8k": [
        {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
        {"question": "What is 10 minus 4?", "answer": "#### 6"},
    ],
    "math": [
        {"problem": "Compute $1/2 + 1/2$.", "solution": "$\\boxed{1}$"},
        {"problem": "Simplify $\\sqrt{4}$.", "solution": "$\\boxed{2}$"},
    ],
    "generic": [
        {"question": "Capital of France?", "answer": "Paris"},
        {"question": "2*3?", "answer": 6},
    ],
    "mc": [
        {"question": "Which is a fruit?", "choices": ["car", "apple", "rock"], "answer": "B"},
        {"question": "Which is even?", "choices": ["3", "4"], "answer": 1},
    ],
}


def TINY(path: Path) -> list[str]:  # noqa: N802
    """The tiny model on one thread: on 2 shared cores, 2 threads spin-wait 10-100x slower."""
    return ["-m", str(path), "--threads", "1"]


def records(path: Path, kind: str | None = "sample") -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if kind is None or r.get("type") == kind]


@pytest.fixture(scope="module")
def tiny_session(tiny_gguf: Path) -> Iterator[Any]:
    from reasoncli.cli.runner import ModelRequest, load_session

    session = load_session(ModelRequest(str(tiny_gguf), threads=1))
    yield session
    session.close()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_end_to_end(fmt: str, tmp_path: Path, tiny_session: Any) -> None:
    from reasoncli.bench.report import build_report

    data = tmp_path / f"{fmt}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in FORMATS[fmt]))
    out = tmp_path / "run.jsonl"
    job = prepare_bench(
        BenchRequest(data=str(data), branches=[1, 3], max_tokens=8, out=out, model="tiny")
    )
    assert job.dataset.format == fmt
    assert job.run(tiny_session, NullProgress()) == 4
    samples = records(out)
    assert [(r["id"], r["budget"]) for r in samples] == [
        ("line-1", "n=1"),
        ("line-1", "n=3"),
        ("line-2", "n=1"),
        ("line-2", "n=3"),
    ]
    for r in samples:
        assert len(r["answers"]) == len(r["labels"]) == len(r["branch_tokens"]) == r["branches"]
        assert 0 < r["tokens"] <= 8 * r["branches"] and r["wall_s"] >= r["gen_s"] > 0
        assert isinstance(r["correct"], bool) and r["expected"]
    (run,) = records(out, "run")
    assert run["model"] == "tiny" and run["format"] == fmt and run["budgets"][1]["branches"] == 3
    assert records(out, "end")[0]["interrupted"] is False
    report = build_report(out)
    assert [c.budget for c in report.cells] == ["n=1", "n=3"]
    assert report.cells[1].subsets[-1].k == 3 and 0 <= report.overhead < 1


def test_cli_run_report_json_and_plot(tiny_gguf: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "r.jsonl", tmp_path / "curve.png"
    args = [*TINY(tiny_gguf), "--limit", "2", "-n", "1,2", "--max-tokens", "6"]
    proc = run_cli("bench", "gsm8k-sample", *args, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # not a TTY: no progress bar
    data = json.loads(proc.stdout)
    assert [c["budget"] for c in data["cells"]] == ["n=1", "n=2"]
    assert {"accuracy", "ci_low", "ci_high", "pass_at_n", "maj_at_n", "mean_tokens",
            "wall_s", "tokens_per_s", "subsets"} <= set(data["cells"][0])  # fmt: skip
    assert "subsets" in data["subsets_note"] and 0 <= data["overhead"] < 1
    pytest.importorskip("matplotlib")
    proc = run_cli("bench", "report", str(out), "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    for text in (
        *("accuracy against compute", "95% CI (Wilson)", "maj@k", "tokens/q", "tok/s"),
        *("from subsets", "accuracy vs tokens", "bench overhead", f"plot: {png}"),
    ):
        assert text in proc.stdout


def test_progress_bar_only_on_a_tty(tiny_gguf: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reasoncli",
            "bench",
            "gsm8k-sample",
            *TINY(tiny_gguf),
            "--limit",
            "2",
            "-n",
            "1",
            "--max-tokens",
            "4",
            "--out",
            str(tmp_path / "r.jsonl"),
            "--json",
        ],  # fmt: skip
        text=True,
        capture_output=True,
        env={**os.environ, "COLUMNS": "120", "REASON_FORCE_TTY": "1"},
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    assert "2/2" in proc.stderr and "ETA" in proc.stderr and "acc n=1" in proc.stderr


def test_ctrl_c_loses_nothing_and_resume_completes(tiny_gguf: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    args = [*TINY(tiny_gguf), "--limit", "30", "-n", "1,2", "--max-tokens", "16"]
    proc = start("bench", "gsm8k-sample", *args, "--out", str(out))
    wait_for_samples(proc, out, 2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted:" in stderr and f"--resume {out}" in stderr
    assert "Traceback" not in stderr  # a Ctrl-C in llama.cpp's log callback is not dropped
    assert "accuracy against compute" in stdout  # the report of what was kept
    before = records(out)
    assert 2 <= len(before) < 60
    end = records(out, "end")[0]
    assert end["interrupted"] is True and end["samples"] == len(before)
    assert f"{len(before)} new sample(s) saved" in stderr

    proc2 = run_cli("bench", "gsm8k-sample", "--resume", str(out), "--threads", "1", "--json")
    assert proc2.returncode == 0, proc2.stderr
    after = records(out)
    keys = [sample_key(r) for r in after]
    assert len(keys) == len(set(keys)) == 60  # 30 questions x 2 budgets, none twice
    assert after[: len(before)] == before  # nothing rewritten
    assert [r["resumed"] for r in records(out, "run")] == [False, True]
    assert sum(c["questions"] for c in json.loads(proc2.stdout)["cells"]) == 60
    proc3 = run_cli("bench", "--resume", str(out), "--max-tokens", "99")
    assert proc3.returncode == 2 and "--max-tokens 99 differs" in proc3.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_record_waits_for_the_whole_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    """bench ends on SIGTERM as on Ctrl-C (run_signals), so the store holds both back while it
    writes a line: the record is kept whole and the interruption comes right after it."""
    from reasoncli.bench.store import JsonlStore
    from reasoncli.cli.signals import Interrupted, run_signals

    out = tmp_path / "run.jsonl"
    with run_signals(), JsonlStore.create(out) as store:
        handle = store._handle  # noqa: SLF001
        real_write = handle.write

        def write(text: str) -> int:
            os.kill(os.getpid(), signum)  # handled at the next bytecode, mid-record
            return real_write(text)

        monkeypatch.setattr(handle, "write", write)
        with pytest.raises(Interrupted) as caught:
            store.append({"type": "sample", "id": "q1"})
    assert caught.value.signum == signum
    assert records(out) == [{"type": "sample", "id": "q1"}]
    assert store.written == 1  # counted: the run's end line and "N saved" say what is on disk


def test_rollouts_grpo_groups_and_resume(tiny_gguf: Path, tmp_path: Path) -> None:
    out = tmp_path / "grpo.jsonl"
    common = [*TINY(tiny_gguf), "-n", "3", "--max-tokens", "8"]
    proc = run_cli("rollouts", "gsm8k-sample", *common, "--limit", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("2 groups (3 completions each)")
    first = records(out, None)
    assert len(first) == 2
    for g in first:
        assert g["prompt"][0]["role"] == "system" and g["prompt"][1]["role"] == "user"
        assert len(g["completions"]) == len(g["rewards"]) == len(g["advantages"]) == 3
        assert g["completions"][0][0]["role"] == "assistant"
        parts = g["reward_components"]
        assert g["rewards"] == [
            a + 0.5 * f for a, f in zip(parts["accuracy"], parts["format"], strict=True)
        ]
        assert abs(sum(g["advantages"])) < 1e-4
    assert [g["answer"] for g in first] == ["72", "10"]
    proc = run_cli("rollouts", "gsm8k-sample", "--limit", "3", "--resume", str(out), "--json",
                  "--threads", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["groups"] == 3
    after = records(out, None)
    assert after[:2] == first and [g["id"] for g in after] == ["line-1", "line-2", "line-3"]


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from reasoncli.bench.plot import PlotUnavailable, require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotUnavailable, match=r"reasoncli\[plot\]"):
        require_matplotlib()


def test_every_strategy_keeps_texts_and_judged_ones_count_the_verifier(
    tmp_path: Path, tiny_session: Any, tiny_gguf: Path
) -> None:
    """Branch texts are kept for every strategy (a later extraction or grading rule can be
    re-applied); a judge's reading is counted beside the generated tokens; the run line names
    the weights by content; vote and best-of-n with the same settings draw the same branches."""
    import hashlib

    from reasoncli.bench.render import render_report
    from reasoncli.bench.report import build_report

    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in FORMATS["generic"]))
    out = tmp_path / "run.jsonl"
    request = BenchRequest(
        data=str(data),
        strategies=["vote", "best-of-n", "beam", "dvts"],
        branches=[2],
        max_tokens=6,
        out=out,
        model="tiny",
        options={"verifier": "self", "beam_width": 2, "step_tokens": 3},
    )
    prepare_bench(request).run(tiny_session, NullProgress())
    rows = {(r["id"], r["strategy"]): r for r in records(out)}
    for r in rows.values():
        assert len(r["texts"]) == len(r["answers"]) and all(isinstance(t, str) for t in r["texts"])
        assert any(r["texts"])
        judged = r["strategy"] != "vote"
        assert (r["verifier_tokens"] > r["tokens"]) if judged else r["verifier_tokens"] == 0
    for qid in ("line-1", "line-2"):
        vote, best = rows[qid, "vote"], rows[qid, "best-of-n"]
        assert vote["texts"] == best["texts"] and vote["branch_tokens"] == best["branch_tokens"]
    (run,) = records(out, "run")
    digest = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert run["model_file"] == {
        "path": str(tiny_gguf),
        "bytes": tiny_gguf.stat().st_size,
        "sha256": digest,
    }
    assert "save_text" not in run and run["sampling"]["temperature"] > 0
    report = build_report(out)
    cost = {c.strategy: (c.mean_tokens, c.mean_verifier_tokens, c.mean_total_tokens)
            for c in report.cells}  # fmt: skip
    assert cost["vote"][1] == 0 and cost["vote"][2] == cost["vote"][0]
    generated, read, total = cost["dvts"]
    assert read > 0 and total == pytest.approx(generated + read)
    from rich.console import Console

    console = Console(record=True, width=200)
    render_report(report, console)
    text = console.export_text()
    assert "verifier tok/q" in text and "total tok/q" in text
