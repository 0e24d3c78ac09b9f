"""The remote-backend test infrastructure: a real llama_cpp.server and the fault proxy."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from remote_support import FaultProxy, LlamaServer, free_port

ALIAS = "tiny"  # what the llama_server fixture (conftest.py) serves the tiny GGUF as


@pytest.fixture()
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=httpx2.Timeout(30.0)) as c:
        yield c


def _completion(**extra: Any) -> dict[str, Any]:
    return {"model": ALIAS, "prompt": "Hello", "max_tokens": 4, "stream": True, **extra}


def _chat(**extra: Any) -> dict[str, Any]:
    return {
        "model": ALIAS,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 3,
        "stream": True,
        **extra,
    }


def _collect(
    client: httpx2.Client, url: str, body: dict[str, Any], **kw: Any
) -> tuple[list[str], list[float]]:
    """Data of every SSE event and its arrival time (monotonic)."""
    data: list[str] = []
    stamps: list[float] = []
    with client.sse(url, method="POST", json=body, **kw) as events:
        assert events.response.status_code == 200
        for event in events:
            data.append(event.data)
            stamps.append(time.monotonic())
    return data, stamps


# -- plumbing ---------------------------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_models_through_proxy(proxy: FaultProxy, client: httpx2.Client) -> None:
    response = client.get(proxy.base_url + "/models")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == [ALIAS]
    assert proxy.counts["/v1/models"] == 1


def test_server_that_dies_reports_its_log(tmp_path: Path) -> None:
    server = LlamaServer(tmp_path / "missing.gguf", startup_timeout=30, log_dir=tmp_path / "log")
    with pytest.raises(RuntimeError, match="exited with code") as info:
        server.start()
    assert "log tail" in str(info.value)
    assert server.pid is None


# -- streaming passes through -----------------------------------------------------------------


def test_streaming_completion_with_logprobs(proxy: FaultProxy, client: httpx2.Client) -> None:
    data, stamps = _collect(client, proxy.base_url + "/completions", _completion(logprobs=3))
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    tokens = [c for c in chunks if c["choices"][0]["logprobs"] is not None]
    assert len(tokens) == 4
    for chunk in tokens:
        lp = chunk["choices"][0]["logprobs"]
        assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 1
        assert lp["tokens"][0] == chunk["choices"][0]["text"]
        assert lp["tokens"][0] in lp["top_logprobs"][0]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    # Relayed as generated, not buffered: logprobs cost the server tens of ms a token.
    assert stamps[-1] - stamps[0] > 0.05
    assert proxy.bodies == [_completion(logprobs=3)]


def test_streaming_chat_with_logprobs(proxy: FaultProxy, client: httpx2.Client) -> None:
    body = _chat(logprobs=True, top_logprobs=3)
    data, _ = _collect(client, proxy.base_url + "/chat/completions", body)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    content = [c for c in chunks if c["choices"][0]["delta"].get("content") is not None]
    assert len(content) == 3
    for chunk in content:
        entries = chunk["choices"][0]["logprobs"]["content"]
        assert len(entries) == 1
        assert entries[0]["token"] == chunk["choices"][0]["delta"]["content"]
        assert 3 <= len(entries[0]["top_logprobs"]) <= 4
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429, 401, 404])
def test_status_faults(proxy: FaultProxy, client: httpx2.Client, status: int) -> None:
    proxy.script([str(status)])
    response = client.post(proxy.base_url + "/completions", json=_completion())
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if status == 429:
        assert response.headers["retry-after"] == "0"
    assert proxy.pending == []


def test_script_is_consumed_in_order_by_generation_posts_only(
    proxy: FaultProxy, client: httpx2.Client
) -> None:
    proxy.script(["500", "ok", "429"])
    tokenize = proxy.root_url + "/extras/tokenize"
    assert client.get(proxy.base_url + "/models").status_code == 200  # GETs don't consume
    assert client.post(tokenize, json={"input": "Hello"}).status_code == 200  # nor tokenize
    body = {"model": ALIAS, "prompt": "Hello", "max_tokens": 1}
    completions = proxy.base_url + "/completions"
    statuses = [client.post(completions, json=body).status_code for _ in range(4)]
    assert statuses == [500, 200, 429, 200]
    assert [r.fault for r in proxy.requests] == [None, None, "500", None, "429", None]
    assert proxy.counts == {"/v1/models": 1, "/extras/tokenize": 1, "/v1/completions": 4}
    assert proxy.bodies == [{"input": "Hello"}] + [body] * 4


def test_drop_cuts_the_stream_after_n_events(proxy: FaultProxy, client: httpx2.Client) -> None:
    proxy.script(["drop:2"])
    seen: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        with client.sse(
            proxy.base_url + "/completions", method="POST", json=_completion(max_tokens=8)
        ) as events:
            for event in events:
                seen.append(event.data)
    assert len(seen) == 2
    assert "[DONE]" not in seen
    assert all(json.loads(d)["choices"][0]["finish_reason"] is None for d in seen)
    # The server is fine afterwards.
    data, _ = _collect(client, proxy.base_url + "/completions", _completion(max_tokens=2))
    assert data[-1] == "[DONE]"


def test_eof_ends_the_stream_cleanly_without_done(proxy: FaultProxy, client: httpx2.Client) -> None:
    proxy.script(["eof:1"])
    data, _ = _collect(client, proxy.base_url + "/chat/completions", _chat())
    assert len(data) == 1
    assert "[DONE]" not in data


def test_stall_makes_the_client_time_out(proxy: FaultProxy, client: httpx2.Client) -> None:
    proxy.script(["stall:3"])
    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        with client.sse(
            proxy.base_url + "/completions",
            method="POST",
            json=_completion(),
            timeout=httpx2.Timeout(5.0, read=0.3),
        ) as events:
            assert events.response.status_code == 200
            for _ in events:
                pytest.fail("a stalled stream sends no event")
    assert time.monotonic() - started < 2.5


def test_html_answer(proxy: FaultProxy, client: httpx2.Client) -> None:
    proxy.script(["html"])
    response = client.post(proxy.base_url + "/chat/completions", json=_chat())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text


def test_garbage_event(proxy: FaultProxy, client: httpx2.Client) -> None:
    proxy.script(["garbage"])
    data, _ = _collect(client, proxy.base_url + "/completions", _completion())
    assert data[-1] == "[DONE]"
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[0])


def test_always_answers_every_request(proxy: FaultProxy, client: httpx2.Client) -> None:
    proxy.always("401")
    assert client.get(proxy.base_url + "/models").status_code == 401
    for _ in range(2):
        response = client.post(proxy.base_url + "/completions", json=_completion())
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
    proxy.always(None)
    assert client.get(proxy.base_url + "/models").status_code == 200


def test_unknown_fault_is_rejected(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        proxy.script(["explode"])


# -- concurrency ------------------------------------------------------------------------------


def test_max_in_flight_counts_concurrent_requests(proxy: FaultProxy) -> None:
    proxy.script(["delay:0.4"] * 3)
    statuses: list[int] = []

    def post() -> None:
        with httpx2.Client(timeout=30.0) as c:
            body = {"model": ALIAS, "prompt": "Hi", "max_tokens": 1}
            r = c.post(proxy.base_url + "/completions", json=body)  # scripted faults hit these
            statuses.append(r.status_code)

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [200, 200, 200]
    assert proxy.max_in_flight >= 2
    assert proxy.in_flight == 0


def test_one_at_a_time_keeps_max_in_flight_at_one(proxy: FaultProxy, client: httpx2.Client) -> None:
    for _ in range(3):
        _collect(client, proxy.base_url + "/completions", _completion(max_tokens=2))
    assert proxy.max_in_flight == 1


# -- a server with an API key -----------------------------------------------------------------


def test_api_key_server(tiny_gguf: Path, client: httpx2.Client) -> None:
    with LlamaServer(tiny_gguf, alias=ALIAS, n_ctx=128, api_key="sekret") as server:
        assert client.get(server.base_url + "/models").status_code == 401
        wrong = client.get(server.base_url + "/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json() == {"detail": "Invalid API key"}
        ok = client.get(server.base_url + "/models", headers=server.auth_headers())
        assert ok.status_code == 200
