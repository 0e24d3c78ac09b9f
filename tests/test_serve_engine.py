"""The engine in its own process, killed for real (SIGKILL, SIGSEGV) mid-stream and mid-batch.

The server must answer the runs in flight with an OpenAI-shaped 503 naming the signal (a
stream: an error event, then [DONE]), record them as failed in the history, start a new engine
process, and serve the next request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from cli_run import reason
from test_serve import ServeProcess, wait_until

LONG = {"model": "vote-2-tiny", "max_tokens": 6000}
COUNT = [{"role": "user", "content": "Count to a million."}]


@pytest.fixture
def crash_server(tiny_gguf: Path, tmp_path: Path) -> Iterator[ServeProcess]:
    env = {"REASON_NO_LOG": "", "REASON_LOGS_PATH": str(tmp_path / "history.sqlite3")}
    s = ServeProcess(tiny_gguf, "--max-branches", "4", "--ctx", "8192", api_key=None, env=env)
    yield s
    assert s.stop() == 0


def engine(server: ServeProcess) -> dict[str, object]:
    info = server.health()["engine"]
    assert isinstance(info, dict)
    return info


def served_after_restart(server: ServeProcess, old_pid: object) -> None:
    """A new engine process comes up and answers the next request."""
    assert wait_until(
        lambda: engine(server)["state"] == "ready" and engine(server)["pid"] != old_pid,
        timeout=60,
    )
    assert engine(server)["restarts"] == 1
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "vote-2-tiny", "messages": COUNT, "max_tokens": 8},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0


def logs(tmp_path: Path, *args: str) -> Any:
    """`reason logs ARGS --json` on the server's log in `tmp_path`."""
    out = reason(
        "logs", *args, "--json", env={"REASON_LOGS_PATH": str(tmp_path / "history.sqlite3")}
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def history(tmp_path: Path) -> list[dict[str, object]]:
    return list(logs(tmp_path, "list"))


def logged_error(tmp_path: Path, run_id: object) -> str:
    return str(logs(tmp_path, "show", str(run_id))["error"] or "")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_killed_engine_ends_a_stream_with_an_error_then_done(
    crash_server: ServeProcess, tmp_path: Path, sig: signal.Signals
) -> None:
    pid = engine(crash_server)["pid"]
    assert isinstance(pid, int) and pid != crash_server.proc.pid
    body = {**LONG, "messages": COUNT, "stream": True}
    with httpx.stream(
        "POST", f"{crash_server.url}/v1/chat/completions", json=body, timeout=60
    ) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        while '"event": "token"' not in next(lines):
            pass
        os.kill(pid, sig)
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"
    errors = [json.loads(line[6:]) for line in rest[:-1] if '"error"' in line]
    assert len(errors) == 1, rest
    assert errors[0]["error"]["code"] == "engine_died"
    assert f"killed by {sig.name}" in errors[0]["error"]["message"]
    served_after_restart(crash_server, pid)
    assert crash_server.proc.poll() is None  # the server itself never went down
    errors_logged = [logged_error(tmp_path, run["id"]) for run in history(tmp_path)]
    assert len(errors_logged) == 2  # the killed run, recorded as failed, and the next one
    assert sum(f"killed by {sig.name}" in e for e in errors_logged) == 1
    assert any(f"killed by {sig.name}" in line for line in crash_server.stderr_lines)


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL], ids=["SIGSEGV", "SIGKILL"])
def test_a_killed_engine_fails_every_run_of_a_batch_with_503(
    crash_server: ServeProcess, tmp_path: Path, sig: signal.Signals
) -> None:
    pid = engine(crash_server)["pid"]
    answers: list[httpx.Response] = []

    def ask(seed: int) -> None:
        body = {**LONG, "messages": COUNT, "seed": seed}
        answers.append(httpx.post(f"{crash_server.url}/v1/chat/completions", json=body, timeout=60))

    clients = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for c in clients:
        c.start()
    # Both requests hold their branches and share decode rounds: a batch is in flight.
    assert wait_until(lambda: crash_server.health()["branch_slots_free"] == 0, timeout=30)
    assert wait_until(lambda: crash_server.health()["shared_rounds"] >= 2, timeout=30)
    os.kill(pid, sig)
    for c in clients:
        c.join(60)
    assert [a.status_code for a in answers] == [503, 503]
    for a in answers:
        error = a.json()["error"]
        assert error["code"] == "engine_died" and f"killed by {sig.name}" in error["message"]
        assert int(a.headers["retry-after"]) > 0
    served_after_restart(crash_server, pid)
    errors_logged = [logged_error(tmp_path, run["id"]) for run in history(tmp_path)]
    assert len(errors_logged) == 3
    assert sum(f"killed by {sig.name}" in e for e in errors_logged) == 2


def test_a_model_that_cannot_load_fails_the_server_with_its_own_exit_code(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    r = subprocess.run(
        [sys.executable, "-m", "reasoncli", "serve", "-m", str(missing), "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 3, r.stderr  # a model error, as `reason ask` gives
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "missing.gguf" in lines[0]
