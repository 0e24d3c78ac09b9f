"""How a run ends when it is stopped: signals on a real terminal, Ctrl-C's summary, a reader
that leaves. Real CLI processes; the live view draws on a real pty, since what is checked
(the cursor) is what a terminal is left with.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_run import reason, start

LONG_RUN = ("-n", "4", "--max-tokens", "4000")
HIDE, SHOW = "\x1b[?25l", "\x1b[?25h"
ANSI_CODES = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def logged_runs() -> list[dict[str, Any]]:
    proc = reason("logs", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def logged_result(run_id: int) -> dict[str, Any]:
    proc = reason("logs", "show", str(run_id), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["result"]


class PtyRun:
    """`reason ...` with stderr on a pty (the live view's terminal) and stdout on a pipe."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reasoncli", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            text=True,
        )
        os.close(slave)
        self.screen = ""

    def read_until(self, pattern: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.screen):
            assert time.monotonic() < deadline, f"no {pattern!r} on the terminal:\n{self.screen}"
            self._read(0.2)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Read the terminal until the process exits; returns (exit code, stdout)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "the run did not end"
            self._read(0.1)
        while self._read(0.1):
            pass
        out = self.proc.stdout.read()
        os.close(self.master)
        return self.proc.returncode, out

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the child closed its side
            return False
        self.screen += data.decode(errors="replace")
        return bool(data)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_the_live_view_ends_the_run_like_ctrl_c(
    tiny_gguf: Path, signum: signal.Signals
) -> None:
    """The cursor comes back, the partial vote is summarised, the run is logged, and the exit
    code is the signal's (128 + N)."""
    run = PtyRun("ask", "q", "-m", str(tiny_gguf), *LONG_RUN, "--progress", "live")
    run.read_until(r"#3 .*\d+ tok")  # every branch is decoding, the view is drawn
    run.proc.send_signal(signum)
    code, out = run.finish()
    assert code == 128 + signum, run.screen
    assert "Traceback" not in run.screen
    assert HIDE in run.screen
    assert run.screen.rfind(SHOW) > run.screen.rfind(HIDE), "the cursor was left hidden"
    assert "interrupted before any branch gave an answer" in run.screen
    assert out == ""  # no branch finished, so there is no answer to print
    (logged,) = logged_runs()
    assert logged["interrupted"] is True and logged["status"] == 128 + signum


def test_sighup_after_the_terminal_is_gone_still_logs_the_run(tiny_gguf: Path) -> None:
    """A closed terminal: its pty master is gone, so every write to stderr fails (EIO)."""
    run = PtyRun("ask", "q", "-m", str(tiny_gguf), *LONG_RUN, "--progress", "live")
    run.read_until(r"#3 .*\d+ tok")
    os.close(run.master)
    run.proc.send_signal(signal.SIGHUP)
    assert run.proc.wait(timeout=60) == 128 + signal.SIGHUP
    (logged,) = logged_runs()
    assert logged["interrupted"] is True and logged["status"] == 129
    assert len(logged_result(logged["id"])["branches"]) == 4


def test_ctrl_c_summary_text_json_and_history_agree(tiny_gguf: Path) -> None:
    """No branch finished: the summary says there is no vote, and the JSON and the history
    give every cut-off branch no answer."""
    run = PtyRun("ask", "q", "-m", str(tiny_gguf), *LONG_RUN, "--progress", "live")
    run.read_until(r"#3 · [1-9]\d* tok")  # every branch has decoded tokens
    run.proc.send_signal(signal.SIGINT)
    code, out = run.finish()
    screen = " ".join(ANSI_CODES.sub("", run.screen).split())
    assert code == 130, screen
    assert out == ""
    assert "answer: none" in screen
    assert "no vote; 4 branches cut off mid-answer do not vote" in screen
    assert "partial result from the branches that finished" not in screen
    (logged,) = logged_runs()
    result = logged_result(logged["id"])
    assert result["votes"] == [] and result["answer"] is None
    assert [b["answer"] for b in result["branches"]] == [None] * 4
    assert {b["finish_reason"] for b in result["branches"]} == {"interrupted"}
    assert result["tokens_per_s"] > 0 and result["timings"]["generate_s"] > 0


def _summary_numbers(err: str) -> tuple[int, int]:
    """(answers counted, branches cut off) as the Ctrl-C summary states them."""
    match = re.search(
        r"the vote counts the (\d+) answers? of finished branches; (\d+) branch(?:es)? cut off",
        err,
    )
    assert match, err
    return int(match[1]), int(match[2])


@pytest.mark.embedded
def test_ctrl_c_after_some_branches_finished_counts_exactly_their_votes() -> None:
    """The embedded model finishes branches at different lengths: interrupt right after the
    first one ends, and the text, the JSON in the history and the vote all count the same."""
    for _attempt in range(3):
        proc = start(
            "ask", "What is 12 + 30?", "-n", "8", "--max-tokens", "256", "--progress", "plain"
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            if re.search(r"branch #\d+ \w+ after", line):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            break
        # On a starved machine this reader can see the first line only after the run has
        # ended, and the signal finds nothing to stop; that run answered normally: try again.
        reason("logs", "rm", "--all")
    assert proc.returncode == 130, err
    counted, cut = _summary_numbers(err)
    (logged,) = logged_runs()
    result = logged_result(logged["id"])
    cut_branches = [b for b in result["branches"] if b["finish_reason"] == "interrupted"]
    assert cut == len(cut_branches) >= 1
    assert all(b["answer"] is None for b in cut_branches)
    assert counted == sum(g["count"] for g in result["votes"])
    voters = [m for g in result["votes"] for m in g["members"]]
    assert not {b["id"] for b in cut_branches} & set(voters)
    if result["answer"] is not None:
        assert out.strip() == result["answer"]


def test_think_interrupted_reports_its_real_decoding_rate(tiny_gguf: Path) -> None:
    run = PtyRun("think", "q", "-m", str(tiny_gguf), "--max-tokens", "4000")
    run.read_until(r"budget 4000 tokens[^\n]*\n(?:.|\n){40,}")  # the chain is being written
    run.proc.send_signal(signal.SIGINT)
    code, _ = run.finish()
    err = " ".join(ANSI_CODES.sub("", run.screen).split())
    assert code == 130, err
    rate = re.search(r"generated ([\d,]+) tok · ([\d.]+) tok/s · .*?generate ([\d.]+)s", err)
    assert rate, err
    tokens, tok_s = int(rate[1].replace(",", "")), float(rate[2])
    assert tokens > 0 and tok_s > 0  # it said 0.0 tok/s and generate 0.0s before
    assert "answer: none" in err and "1 branch cut off mid-answer does not vote" in err
    (logged,) = logged_runs()
    result = logged_result(logged["id"])
    generate_s = result["timings"]["generate_s"]
    assert generate_s > 0 and result["generated_tokens"] == tokens
    assert result["tokens_per_s"] == pytest.approx(tokens / generate_s, rel=0.01)


def test_runs_ended_by_a_closed_stdout_are_logged(tiny_gguf: Path) -> None:
    """`reason ask ... --jsonl | head -c1`, through a real shell pipe, twice."""
    command = f"{sys.executable} -m reasoncli ask q -m {tiny_gguf} -n 2 --max-tokens 4000 --jsonl"
    for _ in range(2):
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{command} | head -c1"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "120"},
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "{" and proc.stderr == ""
    runs = logged_runs()
    assert len(runs) == 2
    for run in runs:  # stopped at the first event after `head` left: kept, as interrupted
        assert run["interrupted"] is True and run["status"] == 0
        assert run["question"] == "q" and run["model"] == "tiny"


def test_a_reader_leaving_mid_run_keeps_the_partial_run(tiny_gguf: Path) -> None:
    """The reader takes events until tokens flow, then closes the pipe: the run stops as on
    Ctrl-C, exits 0 without a word, and its partial branches are in the history."""
    proc = start("ask", "q", "-m", str(tiny_gguf), *LONG_RUN, "--jsonl")
    assert proc.stdout is not None and proc.stderr is not None
    tokens = 0
    for line in proc.stdout:
        tokens += json.loads(line)["event"] == "token"
        if tokens == 20:
            break
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0 and err == ""
    (run,) = logged_runs()
    assert run["interrupted"] is True and run["status"] == 0
    assert run["generated_tokens"] >= 20
    branches = logged_result(run["id"])["branches"]
    assert len(branches) == 4
    assert all(b["finish_reason"] == "interrupted" and b["answer"] is None for b in branches)


def test_a_signal_inside_llama_cpps_log_callback_is_not_lost() -> None:
    """llama.cpp calls its log callback (Python, through ctypes) for every line it logs; an
    exception raised there is dropped by ctypes. A SIGINT landing inside it must still end the
    run: here the main thread spends nearly all its time inside the real callback."""
    import threading

    from llama_cpp import _logger

    from reasoncli.cli.signals import Interrupted, run_signals
    from reasoncli.engine.model import load_llama_cpp

    load_llama_cpp(verbose=False)  # the callback is installed and prints nothing
    main = threading.main_thread().ident
    assert main is not None
    caught = None
    with run_signals():
        timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                for _ in range(1000):
                    _logger.llama_log_callback(4, b"debug line\n", None)
        except Interrupted as exc:
            caught = exc
        timer.join()
    assert caught is not None and caught.exit_code == 130
