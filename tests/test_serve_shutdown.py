"""SIGTERM to `reason serve` under load: every request in flight is answered 200 (what it had)
or an OpenAI-shaped 503 with Retry-After, never a 500; the server exits 0 within the deadline
and the history stays intact.

The first test runs the real server on the tiny GGUF; the second drives `EngineProcess`'s
shutdown deadline directly, for a run that does not stop in time (which a healthy engine on
the tiny model never gives).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from test_serve import ServeProcess, wait_until

from reasoncli.serve import engine_proc
from reasoncli.serve.engine_proc import ENGINE_STOP_S, SHUTDOWN_GRACE_S, EngineProcess, Job
from reasoncli.serve.errors import ApiError
from reasoncli.serve.worker import EngineConfig, RunOrder
from reasoncli.strategies.base import StrategyOptions

# The server's own bound is SHUTDOWN_GRACE_S + ENGINE_STOP_S (10 s) plus sending the answers and
# the interpreter's exit; what docs/serve-and-remote.md promises, with room for a busy machine.
DEADLINE_S = 15.0
MODELS = ["vote-4-tiny", "think-tiny", "best-of-n-2-tiny"]


def test_sigterm_under_load_answers_every_request_200_or_503_and_exits_0(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "history.sqlite3"
    env = {"REASON_NO_LOG": "", "REASON_LOGS_PATH": str(logs)}
    # 10 requests want 27 branches: 4 runs decode (8 slots), the rest wait in the queue.
    s = ServeProcess(
        tiny_gguf, "--max-branches", "8", "--max-requests", "4", "--ctx", "8192", api_key=None,
        env=env,
    )  # fmt: skip
    answers: list[httpx.Response | Exception] = []
    streams: list[list[str] | Exception] = []

    def ask_streamed(i: int) -> None:
        body = {
            "model": "vote-4-tiny",
            "messages": [{"role": "user", "content": f"Count to a billion, {i}."}],
            "max_tokens": 4000,
            "seed": 100 + i,
            "stream": True,
        }
        try:
            with httpx.stream("POST", f"{s.url}/v1/chat/completions", json=body, timeout=60) as r:
                if r.status_code != 200:  # cancelled before it started: a plain error
                    r.read()
                    answers.append(r)
                    return
                streams.append([line for line in r.iter_lines() if line.startswith("data: ")])
        except httpx.HTTPError as exc:
            streams.append(exc)

    def ask(i: int) -> None:
        body = {
            "model": MODELS[i % len(MODELS)],
            "messages": [{"role": "user", "content": f"Count to a million, {i}."}],
            "max_tokens": 4000,
            "seed": i,
        }
        try:
            answers.append(httpx.post(f"{s.url}/v1/chat/completions", json=body, timeout=60))
        except httpx.HTTPError as exc:
            answers.append(exc)

    clients = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    clients += [threading.Thread(target=ask_streamed, args=(i,)) for i in range(2)]
    try:
        for c in clients:
            c.start()
        assert wait_until(lambda: s.health()["requests_in_flight"] == 10, timeout=30)
        assert wait_until(lambda: s.health()["decode_rounds"] >= 2, timeout=30)
        sent = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        rc = s.proc.wait(DEADLINE_S + 10)
        took = time.monotonic() - sent
    finally:
        s.stop()
    for c in clients:
        c.join(10)
    assert rc == 0 and took < DEADLINE_S, (rc, took)
    assert len(answers) + len(streams) == 10
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    statuses = [a.status_code for a in answers if isinstance(a, httpx.Response)]
    assert set(statuses) <= {200, 503}, [a.text for a in answers if isinstance(a, httpx.Response)]
    assert 503 in statuses  # the queued ones, at least, were cancelled
    for a in answers:
        assert isinstance(a, httpx.Response)
        if a.status_code == 503:
            assert int(a.headers["retry-after"]) > 0
            error = a.json()["error"]
            assert error["code"] in {"cancelled", "shutting_down"}
            assert error["type"] and error["message"]
        else:
            assert a.json()["reason"]["results"][0]["interrupted"] is True
    # A stream ends as any stream does: its answer, or an error event, then [DONE].
    assert all(isinstance(x, list) for x in streams), streams
    for lines in streams:
        assert isinstance(lines, list) and lines[-1] == "data: [DONE]", lines
        for line in lines[:-1]:
            if "error" in (chunk := json.loads(line.removeprefix("data: "))):
                assert chunk["error"]["code"] in {"cancelled", "shutting_down"}, chunk
    db = sqlite3.connect(f"file:{logs}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 10  # failed ones too
    finally:
        db.close()


def test_a_run_that_misses_the_shutdown_deadline_gets_a_503_and_new_runs_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_proc, "SHUTDOWN_GRACE_S", 0.05)
    engine = EngineProcess(EngineConfig(model=None))  # type: ignore[arg-type]  # never started
    recorded: list[BaseException | None] = []
    engine.record = lambda question, strategy, options, result, error: recorded.append(error)
    order = RunOrder(rid=1, strategy="vote", question="q", options=StrategyOptions())

    async def shutdown() -> tuple[ApiError, ApiError]:
        engine.loop = asyncio.get_running_loop()
        job = Job(engine, order)
        engine._jobs[1] = job  # a run in the engine that never answers its cancel
        engine.cancel_all()
        with pytest.raises(ApiError) as refused:
            await engine.submit(order)
        with pytest.raises(ApiError) as late:
            await asyncio.wait_for(job.wait(), 5)
        return refused.value, late.value

    refused, late = asyncio.run(shutdown())
    for err in (refused, late):
        assert err.status == 503 and err.code == "shutting_down" and err.retry > 0
    assert "did not stop within" in late.message
    assert recorded == [late]  # the history records it as failed
    assert SHUTDOWN_GRACE_S + ENGINE_STOP_S < DEADLINE_S
