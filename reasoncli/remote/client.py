"""Talking to an OpenAI-compatible server: settings, the startup check, and one streaming call.

Everything HTTP lives here, so the engine deals only in parsed chunks and `RequestFailed`.
The API key is held in `RemoteConfig` with `repr=False` and is only ever put in a header:
it never reaches logs, error messages or JSON output.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from reasoncli.errors import AuthError, ModelError, ProtocolError, ServerUnreachable

DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
QUEUE_TIMEOUT_S = 600.0
N_SERVERS = frozenset({"vllm", "sglang"})  # `owned_by` in GET /models of servers that do `n`
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RemoteConfig:
    """Where the server is and how hard to try. `model` is the server's model id."""

    base_url: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Longest silence allowed once a stream has started; longer is a stall, and retried."""
    queue_timeout_s: float = QUEUE_TIMEOUT_S
    """Longest wait for a request's first chunk: servers queue requests beyond their slots."""
    retries: int = 4
    max_concurrency: int = 8
    use_n: bool | None = None  # None: when the server is one known to honour `n`

    @property
    def root(self) -> str:
        return self.base_url.rstrip("/")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


class RequestFailed(Exception):
    """One request that did not complete; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def _http() -> Any:
    import httpx2

    return httpx2


def timeout_for(config: RemoteConfig) -> Any:
    """For plain calls: connect fast, then `timeout_s` for each read."""
    return _http().Timeout(config.timeout_s, connect=min(CONNECT_TIMEOUT_S, config.timeout_s))


def stream_timeout(config: RemoteConfig) -> Any:
    """For streams, reads are timed by `stream_chunks` itself (first chunk vs. the rest)."""
    connect = min(CONNECT_TIMEOUT_S, config.timeout_s)
    return _http().Timeout(None, connect=connect, write=config.timeout_s)


@dataclass(frozen=True)
class ServerInfo:
    models: tuple[str, ...]
    owned_by: str = ""  # of the chosen model: "vllm", "llamacpp", ...

    @property
    def honours_n(self) -> bool:
        return self.owned_by.lower() in N_SERVERS


def _error_message(response: Any) -> str:
    """The server's own error message, if it sent one in the usual shapes."""
    try:
        body = response.json()
    except Exception:
        text = response.text.strip().splitlines()
        return text[0][:200] if text else ""
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body.get("message")))
        if isinstance(err, dict):
            return str(err.get("message", ""))[:200]
        if err is not None:
            return str(err)[:200]
    return ""


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def check_server(config: RemoteConfig) -> ServerInfo:
    """GET /models once before any work: the ids the server serves, or a one-line error that
    says which of unreachable / bad key / wrong URL / unknown model it is."""
    httpx = _http()
    url = f"{config.root}/models"
    try:
        response = httpx.get(url, headers=config.headers(), timeout=timeout_for(config))
    except httpx.TimeoutException:
        raise ServerUnreachable(
            f"{config.root} did not answer within {config.timeout_s:g} s"
        ) from None
    except (httpx.TransportError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ServerUnreachable(f"cannot reach {config.root}: {_reason(exc)}") from None
    status = response.status_code
    if status in (401, 403):
        detail = _error_message(response)
        raise AuthError(
            f"{config.root} rejected the API key ({status}{': ' + detail if detail else ''}); "
            "set REASON_API_KEY or --api-key-file"
        )
    if status != 200:
        raise ProtocolError(
            f"no OpenAI-compatible API at {config.root} (GET /models answered {status}); "
            "--base-url should end in /v1"
        )
    try:
        data = response.json()["data"]
        ids = [str(m["id"]) for m in data]
        owners = {str(m["id"]): str(m.get("owned_by") or "") for m in data}
    except Exception:
        kind = response.headers.get("content-type", "?").split(";")[0]
        raise ProtocolError(
            f"{config.root} answered GET /models with {kind}, not an OpenAI model list; "
            "--base-url should end in /v1"
        ) from None
    if config.model is not None and config.model not in ids:
        served = ", ".join(ids[:8]) or "none"
        raise ModelError(f"{config.root} has no model {config.model!r}; it serves: {served}")
    chosen = config.model if config.model is not None else (ids[0] if len(ids) == 1 else "")
    return ServerInfo(tuple(ids), owners.get(chosen, ""))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


LLAMA_SERVER = "llamacpp"  # `owned_by` of llama-server's models


def llama_server_n(info: ServerInfo, props: dict[str, Any]) -> int:
    """Branches one request may ask llama-server for with `n`: its parallel slots (`-np`, as
    /props' `total_slots`), since llama-server serves `n` > 1 from one prefill only with
    `-np` >= n (llama.cpp PR #17775); 0 for other servers or one slot. An older llama-server
    that ignores `n` is caught at its first answer, which turns `n` off (remote.engine)."""
    if info.owned_by.lower() != LLAMA_SERVER:
        return 0
    slots = props.get("total_slots")
    return slots if isinstance(slots, int) and not isinstance(slots, bool) and slots >= 2 else 0


def fetch_props(config: RemoteConfig) -> dict[str, Any]:
    """llama-server's `/props` (chat template, BOS/EOS text); {} from servers without it."""
    httpx = _http()
    root = config.root.removesuffix("/v1")
    try:
        response = httpx.get(f"{root}/props", headers=config.headers(), timeout=timeout_for(config))
        body = response.json() if response.status_code == 200 else {}
    except Exception:
        return {}
    return body if isinstance(body, dict) else {}


async def stream_chunks(
    client: Any, config: RemoteConfig, path: str, body: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """POST `body` with `stream: true` and yield each parsed SSE chunk until `[DONE]`.

    The wait for the first chunk may be long (`queue_timeout_s`: a busy server queues the
    request), later silences may not (`timeout_s`: a stall). Raises `RequestFailed`: retryable
    for 429/5xx, timeouts and dropped connections; not for other 4xx, which would recur.
    """
    httpx = _http()
    request = client.build_request(
        "POST", f"{config.root}{path}", json=body, headers=config.headers()
    )
    wait = config.queue_timeout_s
    try:
        response = await asyncio.wait_for(client.send(request, stream=True), wait)
    except asyncio.TimeoutError:
        raise RequestFailed(f"no answer for {wait:g} s (timeout)", retryable=True) from None
    except httpx.TransportError as exc:
        raise RequestFailed(f"connection failed: {_reason(exc)}", retryable=True) from None
    try:
        status = response.status_code
        if status != 200:
            await response.aread()
            detail = _error_message(response)
            raise RequestFailed(
                f"HTTP {status}{': ' + detail if detail else ''}",
                retryable=status in RETRYABLE_STATUS,
                retry_after=_retry_after(response),
            )
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if kind != "text/event-stream":
            raise RequestFailed(
                f"expected an event stream, got {kind or 'no content type'}", retryable=False
            )
        lines = response.aiter_lines()
        while True:
            try:
                line = await asyncio.wait_for(lines.__anext__(), wait)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise RequestFailed(f"no data for {wait:g} s (timeout)", retryable=True) from None
            if not line.startswith("data:"):
                continue  # comments (keep-alive pings), event names, blank separators
            wait = config.timeout_s
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise RequestFailed("malformed event in the stream", retryable=True) from None
            if isinstance(chunk, dict) and "error" in chunk:
                err = chunk["error"]
                msg = err.get("message", err) if isinstance(err, dict) else err
                raise RequestFailed(f"server error: {msg}", retryable=True)
            yield chunk
    except httpx.TransportError as exc:
        raise RequestFailed(f"connection lost: {_reason(exc)}", retryable=True) from None
    finally:
        await response.aclose()
    raise RequestFailed("the stream ended without [DONE]", retryable=True)


def backoff_s(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff (0.25 s, 0.5 s, 1 s … capped at 8 s), or the server's Retry-After."""
    if retry_after is not None:
        return min(retry_after, 30.0)
    return min(8.0, 0.25 * math.pow(2, attempt))
