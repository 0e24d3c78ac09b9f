"""`reason serve` for real: the CLI starts the server on loopback with the tiny GGUF, and the real
`openai` client (plus raw httpx where the client hides the wire) drives it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from cli_run import reason

API_KEY = "sk-serve-test-secret-42"


class ServeProcess:
    """`python -m reasoncli serve ... --port 0`, up once its startup line names the port."""

    def __init__(
        self,
        tiny_gguf: Path,
        *args: str,
        api_key: str | None = API_KEY,
        env: dict[str, str] | None = None,
    ) -> None:
        env = {**os.environ, "REASON_NO_LOG": "1", **(env or {})}
        cmd = [sys.executable, "-m", "reasoncli", "serve", "-m", str(tiny_gguf), "--port", "0"]
        if api_key:
            cmd += ["--api-key", api_key]
        self.proc = subprocess.Popen(
            [*cmd, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        m = re.search(r"http://[\d.]+:(\d+)/v1", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"no startup line: {line!r} {self.proc.stderr.read()}")
        self.url = f"http://127.0.0.1:{m.group(1)}"
        self.stderr_lines = [line]
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.api_key = api_key

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def client(self, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=self.api_key or "none", max_retries=0, **kw
        )

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/health", timeout=5).json()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tiny_gguf: Path) -> Iterator[ServeProcess]:
    s = ServeProcess(tiny_gguf, "--branches", "2", "--max-branches", "8", "--ctx", "512")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def model(server: ServeProcess) -> str:
    return server.client().models.list().data[0].id


def wait_until(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_models_lists_the_model_and_a_name_per_strategy(server: ServeProcess, model: str) -> None:
    ids = [m.id for m in server.client().models.list().data]
    assert ids[0] == model == "tiny"
    assert {"vote-tiny", "best-of-n-tiny", "think-tiny", "auto-tiny"} <= set(ids)


def test_chat_runs_the_default_strategy_and_counts_every_branch(
    server: ServeProcess, model: str
) -> None:
    r = server.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=8
    )
    reason = r.model_extra["reason"]  # type: ignore[index]
    result = reason["results"][0]
    assert reason["strategy"] == "vote" and len(result["branches"]) == 2
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str) and r.choices[0].message.content
    assert r.usage is not None
    assert r.usage.completion_tokens == sum(b["tokens"] for b in result["branches"])
    assert r.usage.prompt_tokens == result["prompt_tokens"] > 0
    assert r.choices[0].finish_reason in ("stop", "length")


def test_completions_with_strategy_and_count_in_the_model_name(
    server: ServeProcess, model: str
) -> None:
    r = server.client().completions.create(model=f"vote-3-{model}", prompt="2+2?", max_tokens=5)
    result = r.model_extra["reason"]["results"][0]  # type: ignore[index]
    assert result["strategy"] == "vote" and len(result["branches"]) == 3
    assert all(b["tokens"] <= 5 for b in result["branches"])
    assert r.object == "text_completion" and isinstance(r.choices[0].text, str)


def test_strategy_and_options_from_the_reason_field(server: ServeProcess, model: str) -> None:
    r = server.client().chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 3+3?"},
        ],
        max_tokens=6,
        extra_body={"reason": {"strategy": "best-of-n", "branches": 3, "verifier": "confidence"}},
    )
    result = r.model_extra["reason"]["results"][0]  # type: ignore[index]
    assert result["strategy"] == "best-of-n" and len(result["branches"]) == 3


def test_n_returns_independent_results(server: ServeProcess, model: str) -> None:
    r = server.client().chat.completions.create(
        model=f"vote-2-{model}",
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=6,
        n=2,
    )
    results = r.model_extra["reason"]["results"]  # type: ignore[index]
    assert [c.index for c in r.choices] == [0, 1] and len(results) == 2
    texts = [[b["text"] for b in res["branches"]] for res in results]
    assert texts[0] != texts[1]  # different seeds
    assert r.usage is not None
    assert r.usage.completion_tokens == sum(res["generated_tokens"] for res in results)


def test_streaming_sends_progress_comments_then_the_answer_and_done(
    server: ServeProcess, model: str
) -> None:
    stream = server.client().chat.completions.create(
        model=f"vote-2-{model}",
        messages=[{"role": "user", "content": "What is 5+5?"}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].model_extra["reason"]["strategy"] == "vote"  # type: ignore[index]
    result = finals[0].model_extra["reason"]  # type: ignore[index]
    kept = [result["answer"], *(b["text"].strip() for b in result["branches"])]
    assert text and text in kept  # the answer, or the kept branch's text when there is none
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={
            "model": f"vote-2-{model}",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4,
            "stream": True,
        },
        timeout=60,
    ) as resp:
        lines = [line for line in resp.iter_lines() if line]
    comments = [json.loads(line[2:]) for line in lines if line.startswith(": ")]
    assert {"start", "branch_start", "branch_end"} <= {c["event"] for c in comments}
    assert lines[-1] == "data: [DONE]"


def test_wrong_or_missing_key_is_401_and_the_key_is_never_logged(
    server: ServeProcess, model: str
) -> None:
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model=model, messages=[{"role": "user", "content": "q"}])
    assert err.value.status_code == 401 and "wrong" not in str(err.value.body)
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert not any(API_KEY in line for line in server.stderr_lines)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"branches": "eight"}, "reason.branches must be int"),
        ({"bogus": 1}, "unknown option reason.bogus"),
        ({"strategy": "nope"}, "unknown strategy 'nope'"),
        ({"strategy": "auto", "budget_tokens": 100, "max_tokens": 512}, "cannot pay for the pilot"),
        ({"branches": 99}, "reason.branches must be an integer from 1 to 8, not 99"),
        ({"min_tokens": None}, "reason.min_tokens must be int, not null"),  # was a 500
        ({"temperature": -1}, "temperature must be at least 0"),
        ({"top_p": 5}, "top_p must be in (0, 1], not 5"),
        ({"top_k": -3}, "reason.top_k must be an integer from 0"),
    ],
)
def test_bad_options_are_400_with_an_openai_error_body(
    server: ServeProcess, model: str, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        server.client().chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "q"}],
            max_tokens=4,
            extra_body={"reason": extra},
        )
    body = err.value.body
    assert isinstance(body, dict) and message in body["message"], body
    assert body["type"] == "invalid_request_error"


def test_unknown_model_is_404(server: ServeProcess) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        server.client().chat.completions.create(
            model="vote-8-gpt-5", messages=[{"role": "user", "content": "q"}]
        )
    assert isinstance(err.value.body, dict) and err.value.body["code"] == "model_not_found"


def test_concurrent_requests_share_decode_batches(server: ServeProcess, model: str) -> None:
    before = server.health()["shared_rounds"]
    results: list[Any] = []

    def ask(i: int) -> None:
        r = server.client().chat.completions.create(
            model=f"vote-2-{model}",
            messages=[{"role": "user", "content": f"What is {i}+{i}?"}],
            max_tokens=24,
            seed=i,
        )
        results.append(r)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 4
    assert all(len(r.model_extra["reason"]["results"][0]["branches"]) == 2 for r in results)
    health = server.health()
    assert health["shared_rounds"] > before  # branches of different requests, one batch
    assert health["mixed_rounds"] <= health["decode_rounds"]  # a prompt fed beside branches
    assert health["short_rounds"] <= health["decode_rounds"]  # a busy run that missed a round


def test_client_disconnect_mid_stream_frees_its_branches(tiny_gguf: Path) -> None:
    s = ServeProcess(tiny_gguf, "--max-branches", "4", "--ctx", "8192", api_key=None)
    try:
        body = {
            "model": "vote-4-tiny",
            "messages": [{"role": "user", "content": "Count to a million."}],
            "max_tokens": 8000,
            "stream": True,
        }
        with httpx.stream("POST", f"{s.url}/v1/chat/completions", json=body, timeout=60) as r:
            lines = r.iter_lines()  # kept open: leaving a for loop would close the response
            while '"event": "token"' not in next(lines):
                pass
            assert s.health()["branch_slots_free"] == 0
            r.close()
            closed = time.monotonic()
        assert wait_until(lambda: s.health()["branch_slots_free"] == 4, timeout=10)
        assert time.monotonic() - closed < 5
        assert s.health()["requests_in_flight"] == 0
    finally:
        assert s.stop() == 0


def test_full_queue_is_429_with_retry_after_and_sigterm_cancels_cleanly(tiny_gguf: Path) -> None:
    s = ServeProcess(
        tiny_gguf, "--max-branches", "2", "--queue", "0", "--ctx", "8192", api_key=None
    )
    answers: list[httpx.Response] = []
    body = {
        "model": "vote-2-tiny",
        "messages": [{"role": "user", "content": "Count to a million."}],
        "max_tokens": 8000,
    }
    long_run = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{s.url}/v1/chat/completions", json=body, timeout=60)
        )
    )
    try:
        long_run.start()
        # The run must be decoding (inside the strategy's Ctrl-C path), not merely holding its
        # slots: a SIGTERM between the slot reservation and the first decode round cancels it
        # before it has a result, which is a 503, not a partial answer.
        assert wait_until(lambda: s.health()["branch_slots_free"] == 0, timeout=30)
        assert wait_until(lambda: s.health()["decode_rounds"] >= 2, timeout=30)
        busy = httpx.post(f"{s.url}/v1/chat/completions", json=body, timeout=60)
        assert busy.status_code == 429 and int(busy.headers["retry-after"]) > 0
        assert busy.json()["error"]["code"] == "busy"
        stopped = time.monotonic()
    finally:
        rc = s.stop()
    long_run.join(30)
    assert rc == 0 and time.monotonic() - stopped < 20
    assert answers and answers[0].status_code == 200
    result = answers[0].json()["reason"]["results"][0]
    assert result["interrupted"] is True  # cancelled by SIGTERM, with what it had computed
    assert answers[0].json()["choices"][0]["finish_reason"] == "length"  # a cut answer
    assert 0 < result["generated_tokens"] < 2 * 8000


def test_served_runs_are_kept_in_the_history(tiny_gguf: Path, tmp_path: Path) -> None:
    logs = tmp_path / "history.sqlite3"
    env = {"REASON_NO_LOG": "", "REASON_LOGS_PATH": str(logs)}
    s = ServeProcess(tiny_gguf, "--max-branches", "4", api_key=None, env=env)
    try:
        r = s.client().chat.completions.create(
            model="vote-3-tiny",
            messages=[{"role": "user", "content": "What is 1+1?"}],
            max_tokens=5,
        )
        served = r.model_extra["reason"]["results"][0]  # type: ignore[index]
    finally:
        assert s.stop() == 0
    run_env: dict[str, str | None] = {"REASON_LOGS_PATH": str(logs)}
    listed = reason("logs", "list", "--json", env=run_env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 1 and runs[0]["strategy"] == "vote" and runs[0]["source"] == "serve"
    shown = reason("logs", "show", str(runs[0]["id"]), "--json", env=run_env)
    assert shown.returncode == 0, shown.stderr
    kept = json.loads(shown.stdout)["result"]
    assert [b["text"] for b in kept["branches"]] == [b["text"] for b in served["branches"]]


def post(server: ServeProcess, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_KEY}", **kw.pop("headers", {})}
    return httpx.post(f"{server.url}{path}", headers=headers, timeout=60, **kw)


def test_limits_are_listed_in_health_and_models(server: ServeProcess) -> None:
    limits = server.health()["limits"]
    assert limits["max_request_branches"] == 8 and limits["max_tokens_per_branch"] == 512
    assert limits["max_request_tokens"] == 32768 and limits["max_body_bytes"] == 1 << 20
    listed = server.client().models.list().data[0].model_extra
    assert listed is not None and listed["limits"] == limits


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"model": "tiny", "temperature": NaN, "messages": []}', "must be JSON"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "q"}]', "must be JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "q"}], "n": 99}', "'n'"),
        ('{"model": 7, "messages": [{"role": "user", "content": "q"}]}', "'model' is required"),
        ('{"model": "tiny", "messages": [{"role": "robot", "content": "q"}]}', "messages[0]"),
    ],
)
def test_malformed_bodies_are_400s_with_openai_error_bodies(
    server: ServeProcess, body: str, message: str
) -> None:
    r = post(server, "/v1/chat/completions", content=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"


def test_a_body_over_the_limit_is_413_before_it_is_read_whole(tiny_gguf: Path) -> None:
    s = ServeProcess(tiny_gguf, "--max-body-bytes", "2048", api_key=None)
    try:
        big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 4096}]}
        r = httpx.post(f"{s.url}/v1/chat/completions", json=big, timeout=30)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
            yield b'{"model": "tiny", "prompt": "'
            for _ in range(64):
                yield b"y" * 64
            yield b'"}'

        r = httpx.post(f"{s.url}/v1/completions", content=chunks(), timeout=30)
        assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]["message"]
        assert s.health()["limits"]["max_body_bytes"] == 2048
    finally:
        assert s.stop() == 0


def test_a_prompt_that_cannot_fit_the_context_is_400_before_any_decode(
    server: ServeProcess,
) -> None:
    rounds = server.health()["decode_rounds"]
    long_prompt = "Count the apples and the pears. " * 200  # far over --ctx 512
    for stream in (False, True):
        r = post(
            server,
            "/v1/completions",
            json={"model": "vote-2-tiny", "prompt": long_prompt, "max_tokens": 8, "stream": stream},
        )
        assert r.status_code == 400, r.text
        assert "--ctx" in r.json()["error"]["message"]
    assert server.health()["decode_rounds"] == rounds


def test_a_plan_over_the_request_token_ceiling_is_400(tiny_gguf: Path) -> None:
    s = ServeProcess(tiny_gguf, "--max-request-tokens", "64", "--ctx", "512", api_key=None)
    try:
        body = {"model": "vote-4-tiny", "prompt": "2+2?", "max_tokens": 32}
        r = httpx.post(f"{s.url}/v1/completions", json=body, timeout=30)
        assert r.status_code == 400 and "may generate 128 tokens" in r.json()["error"]["message"]
        ok = httpx.post(f"{s.url}/v1/completions", json={**body, "max_tokens": 16}, timeout=60)
        assert ok.status_code == 200
        assert ok.json()["usage"]["completion_tokens"] <= 64
    finally:
        assert s.stop() == 0


def test_a_port_in_use_fails_before_the_model_loads_with_exit_9(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        missing = tmp_path / "not-loaded.gguf"  # were the model loaded first, this would be exit 3
        r = subprocess.run(
            [sys.executable, "-m", "reasoncli", "serve", "-m", str(missing), "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode == 9, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot listen on 127.0.0.1:")
    assert "choose another --port" in lines[0] and "Errno" not in r.stderr


def test_a_reachable_address_without_a_key_is_warned_about() -> None:
    from reasoncli.cli.serve import exposure_warning

    warning = exposure_warning("0.0.0.0", 8080, None)
    assert warning is not None and warning.startswith("Warning: serving on 0.0.0.0:8080")
    assert "--api-key" in warning
    assert exposure_warning("0.0.0.0", 8080, "key") is None
    assert exposure_warning("127.0.0.1", 8080, None) is None
    assert exposure_warning("::1", 8080, None) is None
    assert exposure_warning("localhost", 8080, None) is None


def test_prompt_cache_reuses_prefixes_without_changing_answers(
    server: ServeProcess, model: str, tiny_gguf: Path
) -> None:
    """The same seeded requests to a server with the prompt cache (the default) and to one with
    --no-prompt-cache: the same branches; usage and /health count the prompt tokens reused."""

    def ask(s: ServeProcess, question: str) -> tuple[list[Any], int, int]:
        r = s.client().chat.completions.create(
            model=f"vote-2-{model}",
            messages=[{"role": "user", "content": question}],
            max_tokens=12,
            seed=3,
        )
        branches = r.model_extra["reason"]["results"][0]["branches"]
        assert r.usage is not None and r.usage.prompt_tokens_details is not None
        cached = r.usage.prompt_tokens_details.cached_tokens or 0
        return [r.choices[0].message.content, branches], cached, r.usage.prompt_tokens

    questions = ["What is 2+2?", "What is 3+5?", "What is 2+2?"]
    before = server.health()
    cached = [ask(server, q) for q in questions]
    after = server.health()
    plain = ServeProcess(tiny_gguf, "--branches", "2", "--max-branches", "8", "--ctx", "512",
                         "--no-prompt-cache")  # fmt: skip
    try:
        uncached = [ask(plain, q) for q in questions]
        assert plain.health()["prompt_cache"] is False
    finally:
        plain.stop()
    assert [a for a, _, _ in uncached] == [a for a, _, _ in cached]
    assert [c for _, c, _ in uncached] == [0, 0, 0]
    # The repeated question finds its whole prompt but the last token (which its branches
    # decode) cached; the others at least the chat template and the system prompt.
    (_, c0, _), (_, c1, _), (_, c2, n2) = cached
    assert c1 > 0 and c2 == n2 - 1
    assert after["prompt_cache"] is True
    assert after["prompt_cache_prompts"] - before["prompt_cache_prompts"] == 3
    assert after["prompt_cache_hits"] - before["prompt_cache_hits"] >= 2
    assert after["prompt_tokens_cached"] - before["prompt_tokens_cached"] == c0 + c1 + c2
