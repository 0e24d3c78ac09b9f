"""The CLI as a user runs it: real subprocesses, stdout and stderr asserted separately; the
errors raised before llama.cpp loads run in-process (`run_cli`, the same `main()`)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from cli_run import Run, interrupted_vote, run_cli, start
from cli_run import reason as run_reason

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def reason(
    *args: str, input: str | None = "", env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """NO_COLOR cleared unless a test sets it."""
    return run_reason(*args, input=input, env={"NO_COLOR": None, **(env or {})}, timeout=timeout)


def in_process(*args: str, input: str | None = "") -> Run:
    """`reason` without a process (tests/cli_run.py `run_cli`), NO_COLOR cleared."""
    return run_cli(*args, input=input, env={"NO_COLOR": None})


def one_error_line(proc: subprocess.CompletedProcess[str] | Run) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["ask", "--help"],  # Click's help, on sys.stdout
        ["--version"],
        ["ask", "q", "--branches", "0"],  # a usage error from the option checks (2)
        ["ask", "q", "--no-such-flag"],  # Click's own usage error (2)
        ["ask", "q", "-m", "/nonexistent/model.gguf"],  # a ReasonError (3)
        ["ask", ""],  # empty question (4)
        ["logs", "list", "--json"],
        ["models", "list"],
    ],
)
def test_in_process_runs_are_the_process(args: list[str]) -> None:
    """`run_cli` stands in for the process only if they agree: exit code, stdout, stderr."""
    proc, run = reason(*args), in_process(*args)
    assert (run.returncode, run.stdout, run.stderr) == (proc.returncode, proc.stdout, proc.stderr)


def test_in_process_runs_see_what_llama_cpp_writes(tiny_gguf: Path) -> None:
    """llama.cpp writes to file descriptor 2, past `sys.stderr`: `run_cli` captures it, so an
    in-process "stderr is empty" means what it means in a process."""
    args = ("ask", "q", "-m", str(tiny_gguf), "-n", "1", "--max-tokens", "2")
    verbose = in_process(*args, "--verbose", "--json")
    assert "llama_model_loader" in verbose.stderr
    assert json.loads(verbose.stdout)["strategy"] == "vote"
    quiet = in_process(*args, "--json")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["strategy"] == "vote"


def test_help_lists_commands() -> None:
    proc = reason("--help")
    assert proc.returncode == 0
    for command in ("ask", "think", "models", "strategies"):
        assert command in proc.stdout


def test_ask_json_schema(tiny_gguf: Path) -> None:
    proc = reason(
        "ask", "What is 2+2?", "-m", str(tiny_gguf), "-n", "3", "--max-tokens", "12", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # not a TTY: no live view
    data = json.loads(proc.stdout)
    assert data["question"] == "What is 2+2?"
    assert data["strategy"] == "vote" and data["model"] == "tiny"
    assert len(data["branches"]) == 3
    for b in data["branches"]:
        assert set(b) >= {"id", "text", "answer", "tokens", "finish_reason"}
        assert 0 < b["tokens"] <= 12
        assert b["finish_reason"] in {"eos", "length", "stop"}
    assert data["generated_tokens"] == sum(b["tokens"] for b in data["branches"])
    assert set(data["timings"]) == {
        *("load_s", "prompt_s", "generate_s", "total_s"),
        *("prompt_tokens_decoded", "decode_calls"),
    }
    assert data["timings"]["prompt_tokens_decoded"] == data["prompt_tokens"]  # once, not 3x
    assert sum(v["count"] for v in data["votes"]) <= 3
    assert data["interrupted"] is False


def test_question_from_stdin_and_argument(tiny_gguf: Path) -> None:
    tiny = ("-m", str(tiny_gguf), "-n", "1", "--max-tokens", "4", "--json")
    proc = reason("ask", *tiny, input="What is 17*23?\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["question"] == "What is 17*23?"
    proc = reason("ask", "Answer briefly.", *tiny, input="Context line\n")
    assert json.loads(proc.stdout)["question"] == "Context line\n\nAnswer briefly."


def test_jsonl_streams_events_then_result(tiny_gguf: Path) -> None:
    proc = reason("ask", "Hi", "-m", str(tiny_gguf), "-n", "2", "--max-tokens", "6", "--jsonl")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "result"
    assert kinds.count("branch_start") == 2 and kinds.count("branch_end") == 2
    assert "token" in kinds and "vote" in kinds


def test_expect_adds_rewards_and_advantages(tiny_gguf: Path) -> None:
    proc = reason(
        "ask",
        "What is 6*7?",
        "-m",
        str(tiny_gguf),
        "-n",
        "4",
        "--max-tokens",
        "8",
        "--expect",
        "42",
        "--json",
    )
    data = json.loads(proc.stdout)
    rewards = [b["reward"] for b in data["branches"]]
    assert all({"accuracy", "format", "total", "advantage"} <= set(r) for r in rewards)
    assert abs(sum(r["advantage"] for r in rewards)) < 1e-6


def test_think_forces_the_answer_at_the_budget(tiny_gguf: Path) -> None:
    proc = reason(
        "think",
        "Is 1001 prime?",
        "-m",
        str(tiny_gguf),
        "--max-tokens",
        "10",
        "--answer-tokens",
        "6",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    branch = data["branches"][0]
    assert data["details"]["forced_answer"] is True
    assert "Final Answer:" in branch["text"]
    assert branch["tokens"] <= 16


@pytest.mark.parametrize(
    ("args", "stdin", "code", "pattern"),
    [
        (["ask", ""], "", 4, "empty question"),
        (["ask", "q", "-m", "/nonexistent/model.gguf"], "", 3, "not found"),
        (["ask", "q", "-m", "no-such-model"], "", 3, "unknown model"),
    ],
)
def test_bad_input_gets_one_line_and_exit_code(
    args: list[str], stdin: str, code: int, pattern: str
) -> None:
    proc = in_process(*args, input=stdin)
    assert proc.returncode == code
    assert pattern in one_error_line(proc)
    assert proc.stdout == ""


def test_not_a_gguf_and_truncated_gguf(tmp_path: Path, tiny_gguf: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("this is not a model\n")
    proc = in_process("ask", "q", "-m", str(fake))
    assert proc.returncode == 3 and "GGUF" in one_error_line(proc)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    proc = in_process("ask", "q", "-m", str(cut))
    assert proc.returncode == 3 and "truncated" in one_error_line(proc).lower()


def test_usage_errors_exit_2(tiny_gguf: Path) -> None:
    proc = in_process("ask", "q", "--branches", "0")
    assert proc.returncode == 2
    assert one_error_line(proc) == "Error: --branches must be at least 1, not 0"
    proc = in_process("doctor", "--max-tokens", "x")  # a command's own flag reads alike
    assert proc.returncode == 2
    assert one_error_line(proc) == "Error: --max-tokens must be a whole number, not 'x'"
    assert in_process("ask", "q", "--no-such-flag").returncode == 2
    proc = in_process("ask", "q", "-m", str(tiny_gguf), "--strategy", "nope")
    assert proc.returncode == 2 and "unknown strategy" in one_error_line(proc)
    proc = in_process(
        "think", "q", "-m", str(tiny_gguf), "--min-tokens", "50", "--max-tokens", "10"
    )
    assert proc.returncode == 2 and "--min-tokens" in one_error_line(proc)


def test_impossible_request_is_refused_cleanly(tiny_gguf: Path) -> None:
    proc = reason("ask", "q", "-m", str(tiny_gguf), "-n", "300", "--max-tokens", "4")
    assert proc.returncode == 5 and "branches" in one_error_line(proc)
    proc = reason("ask", "q", "-m", str(tiny_gguf), "-n", "1", "--max-tokens", "900000")
    assert proc.returncode == 5 and "context window" in one_error_line(proc)


def test_live_view_goes_to_stderr_only_on_a_tty(tiny_gguf: Path) -> None:
    args = ("ask", "What is 1+1?", "-m", str(tiny_gguf), "-n", "2", "--max-tokens", "6", "--json")
    proc = reason(*args, env={"REASON_FORCE_TTY": "1"})
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)  # stdout is still pure JSON
    assert "#0" in proc.stderr and "#1" in proc.stderr
    assert ANSI.search(proc.stderr)
    plain = reason(*args, env={"REASON_FORCE_TTY": "1", "NO_COLOR": "1"})
    assert "#0" in plain.stderr
    assert not re.search(r"\x1b\[[0-9;]*3[0-9]m", plain.stderr)  # no colour codes
    quiet = reason(*args, "--quiet", env={"REASON_FORCE_TTY": "1"})
    assert quiet.stderr == ""


def test_closed_stdout_pipe_exits_quietly(tiny_gguf: Path) -> None:
    proc = start("ask", "q", "-m", str(tiny_gguf), "-n", "4", "--max-tokens", "64", "--jsonl")
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_ctrl_c_prints_partial_vote_and_exits_130(tiny_gguf: Path) -> None:
    result = interrupted_vote(tiny_gguf)
    assert result["event"] == "result" and result["interrupted"] is True
    assert len(result["branches"]) == 4
    assert all(b["tokens"] > 0 for b in result["branches"])


@pytest.mark.embedded
def test_embedded_model_answers_on_stdout_only() -> None:
    proc = reason("ask", "What is 2 + 3?", "--branches", "4", "--max-tokens", "96")
    assert proc.returncode in (0, 1), proc.stderr
    if proc.returncode == 0:
        assert proc.stdout.strip() and "\n" not in proc.stdout.strip()
    assert "Traceback" not in proc.stderr


@pytest.mark.embedded
def test_embedded_model_think_json() -> None:
    proc = reason("think", "What is 12 + 30?", "--max-tokens", "64", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "smollm2-135m" and data["strategy"] == "think"
    assert data["branches"][0]["tokens"] > 0
