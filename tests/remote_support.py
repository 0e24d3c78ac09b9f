"""Test infrastructure for the remote (OpenAI-compatible) backend.

* `LlamaServer` runs `python -m llama_cpp.server` on a GGUF file in a subprocess.
* `FaultProxy` sits in front of any upstream base URL, forwards requests (streaming SSE through
  line by line) and injects scripted faults: error statuses, dropped or stalled streams, HTML.

Both are context managers and use only the standard library.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FaultProxy",
    "LlamaServer",
    "RecordedRequest",
    "free_port",
    "served_with_proxy",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# llama_cpp.server subprocess
# --------------------------------------------------------------------------------------------


class LlamaServer:
    """`python -m llama_cpp.server` on `model`, listening on 127.0.0.1.

    `interrupt_requests` is always False: its default (True) makes the server cut a running
    stream short whenever another request arrives. `logits_all` is True (also the server's
    default), which streaming logprobs need; it costs n_ctx * n_vocab * 4 bytes of RAM, so keep
    `n_ctx` small for tests.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        alias: str = "tiny",
        n_ctx: int = 1024,
        n_threads: int = 1,
        api_key: str | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 60.0,
        log_dir: str | os.PathLike[str] | None = None,
        verbose: bool = False,
    ) -> None:
        self.model = Path(model)
        self.alias = alias
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.api_key = api_key
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.verbose = verbose
        self._fixed_port = port
        self.port = port or 0
        self._own_log_dir = log_dir is None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT` (the `/extras/...` endpoints live outside `/v1`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--model_alias",
            self.alias,
            "--interrupt_requests",
            "False",
            "--logits_all",
            "True",
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            "--verbose",
            str(self.verbose),
        ]
        if self.api_key is not None:
            args += ["--api_key", self.api_key]
        return args + self.extra_args

    def start(self) -> LlamaServer:
        if self._proc is not None:
            raise RuntimeError("LlamaServer already started")
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="llama-server-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self.port = self._fixed_port or free_port()
            self.log_path = self._log_dir / f"server-{self.port}.log"
            try:
                self._launch_and_wait()
                return self
            except _PortTaken:
                if attempt == attempts - 1:
                    raise RuntimeError(self._failure("port stayed busy")) from None
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._own_log_dir and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _launch_and_wait(self) -> None:
        assert self.log_path is not None
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                if "address already in use" in self.log_text().lower():
                    raise _PortTaken
                raise RuntimeError(self._failure(f"exited with code {code}"))
            if self._ready():
                return
            if time.monotonic() > deadline:
                message = self._failure(f"not ready after {self.startup_timeout:.0f} s")
                self.stop()
                raise RuntimeError(message)
            time.sleep(0.1)

    def _ready(self) -> bool:
        request = urllib.request.Request(self.base_url + "/models", headers=self.auth_headers())
        try:
            with urllib.request.urlopen(request, timeout=2.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            return False

    def _failure(self, what: str) -> str:
        return f"llama_cpp.server on port {self.port} {what}; log tail:\n{self.log_tail()}"


class _PortTaken(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Fault-injecting HTTP proxy
# --------------------------------------------------------------------------------------------

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "accept-encoding",
}

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fault: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Fault:
    kind: str  # ok | status | drop | eof | stall | delay | html | garbage | nologprobs
    status: int = 200
    count: int = 0
    seconds: float = 0.0
    spec: str = "ok"


def _parse_fault(spec: str) -> _Fault:
    name, _, arg = spec.strip().partition(":")
    name = name.lower()
    if name in ("ok", "pass", ""):
        return _Fault("ok", spec=spec)
    if name.isdigit():
        return _Fault("status", status=int(name), spec=spec)
    if name in ("drop", "eof"):
        return _Fault(name, count=int(arg or 0), spec=spec)
    if name in ("stall", "delay"):
        return _Fault(name, seconds=float(arg or 0), spec=spec)
    if name in ("html", "garbage", "nologprobs"):
        return _Fault(name, spec=spec)
    raise ValueError(f"unknown fault {spec!r}")


@dataclass
class _ProxyState:
    upstream: str
    script: list[_Fault] = field(default_factory=list)
    always: _Fault | None = None
    counts: Counter[str] = field(default_factory=Counter)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)
    upstream_timeout: float = 120.0


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of `upstream` (a base URL, with or without `/v1`).

    Every request is forwarded (method, path, query, headers, body) and the response is relayed
    as it arrives: `text/event-stream` bodies line by line, each flushed at once.

    Faults, as strings:

    * `"ok"`: forward normally.
    * `"500"`, `"429"`, `"401"`, ... (any status): answer that status with an OpenAI-style body
      `{"error": {"message", "type", "code"}}`; 429 also sends `Retry-After: 0`.
    * `"nologprobs"`: forward without the request's logprobs fields, like a server without them
    * `"drop:N"`: forward, relay N SSE events, then close the socket mid chunked body (the client
      sees a protocol error: "incomplete chunked read"), never sending `[DONE]`. (A stream with
      fewer than N events passes whole, `[DONE]` included, before the cut.)
    * `"eof:N"`: like drop, but the body is close-delimited, so the stream just ends cleanly
      after N events, without `[DONE]`.
    * `"stall:S"`: answer 200 with SSE headers, send nothing for S seconds, then close.
    * `"delay:S"`: wait S seconds, then forward normally.
    * `"html"`: answer 200 `text/html` (a server that does not speak the API).
    * `"garbage"`: answer 200 SSE with a data line that is not JSON, then `[DONE]`.

    `script([...])` queues faults consumed one per completion/chat POST, in order; once the queue is
    empty POSTs pass through. `always(fault)` applies one fault to every request, any method,
    until `always(None)`.
    """

    def __init__(self, upstream: str, *, upstream_timeout: float = 120.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        prefix = parts.path.rstrip("/")
        prefix = prefix[: -len("/v1")] if prefix.endswith("/v1") else prefix
        self._state = _ProxyState(upstream=upstream, upstream_timeout=upstream_timeout)
        state = self._state
        host, port = self._upstream_host, self._upstream_port

        class Handler(_ProxyHandler):
            pass

        Handler.state = state
        Handler.upstream_host = host
        Handler.upstream_port = port
        Handler.upstream_prefix = prefix
        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FaultProxy:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    # -- addresses ----------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    # -- fault plan ---------------------------------------------------------------------------

    def script(self, faults: Sequence[str]) -> None:
        """Replace the POST fault queue with `faults` (validated now, consumed in order)."""
        parsed = [_parse_fault(f) for f in faults]
        with self._state.lock:
            self._state.script = parsed

    def always(self, fault: str | None) -> None:
        """Apply `fault` to every request (any method) until called with None."""
        parsed = _parse_fault(fault) if fault is not None else None
        with self._state.lock:
            self._state.always = parsed

    @property
    def pending(self) -> list[str]:
        """Faults not consumed yet."""
        with self._state.lock:
            return [f.spec for f in self._state.script]

    def reset(self) -> None:
        """Clear the fault plan and every record."""
        with self._state.lock:
            self._state.script = []
            self._state.always = None
            self._state.counts.clear()
            self._state.requests.clear()
            self._state.max_in_flight = self._state.in_flight

    # -- records ------------------------------------------------------------------------------

    @property
    def counts(self) -> Counter[str]:
        """Requests seen per path (query string excluded)."""
        with self._state.lock:
            return Counter(self._state.counts)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def bodies(self) -> list[Any]:
        """Each POST's JSON body (None where it was not JSON), in arrival order."""
        out: list[Any] = []
        for req in self.requests:
            if req.method == "POST":
                try:
                    out.append(req.json())
                except ValueError:
                    out.append(None)
        return out

    @property
    def in_flight(self) -> int:
        with self._state.lock:
            return self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        """Most generation requests (POST …completions) handled at once since start or
        `reset()`; one stops counting when its `[DONE]` goes out."""
        with self._state.lock:
            return self._state.max_in_flight

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._state.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _without_logprobs(body: bytes) -> bytes:
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    for key in ("logprobs", "top_logprobs"):
        data.pop(key, None)
    return json.dumps(data).encode()


def _generates(path: str) -> bool:
    """Completion and chat requests take scripted faults; tokenize calls and the like do not."""
    return urlsplit(path).path.rstrip("/").endswith("completions")


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-request (cancelled branches) are normal here, not errors."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _ProxyState
    upstream_host: str
    upstream_port: int
    upstream_prefix: str = ""
    _counted: bool = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- dispatch -----------------------------------------------------------------------------

    def _handle(self) -> None:
        st = self.state
        # Only generation counts: --max-concurrency bounds those, not /models or /tokenize.
        self._counted = self.command == "POST" and _generates(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with st.lock:
            st.in_flight += int(self._counted)
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            if st.always is not None:
                fault = st.always
            elif self.command == "POST" and st.script and _generates(self.path):
                fault = st.script.pop(0)
            else:
                fault = _Fault("ok")
            path = urlsplit(self.path).path
            st.counts[path] += 1
            st.requests.append(
                RecordedRequest(
                    method=self.command,
                    path=path,
                    headers=dict(self.headers.items()),
                    body=body,
                    fault=None if fault.kind == "ok" else fault.spec,
                )
            )
        try:
            self._apply(fault, body)
        except (OSError, http.client.HTTPException):
            # The client went away, or the upstream failed mid-body: end this connection.
            self._abort()
        finally:
            self._request_done()

    # Every method goes through the one dispatcher.
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def _request_done(self) -> None:
        """Stop counting this request as in flight (called just before its last bytes go out)."""
        if self._counted:
            self._counted = False
            with self.state.lock:
                self.state.in_flight -= 1

    def _apply(self, fault: _Fault, body: bytes) -> None:
        if fault.kind == "status":
            self._send_error_status(fault.status)
        elif fault.kind == "html":
            self._send_plain(200, "text/html; charset=utf-8", b"<html><body>Hello</body></html>")
        elif fault.kind == "garbage":
            self._send_garbage_stream()
        elif fault.kind == "stall":
            self._stall(fault.seconds)
        else:
            if fault.kind == "delay" and self.state.closing.wait(fault.seconds):
                self.close_connection = True
                return
            if fault.kind == "nologprobs":  # a server that ignores the logprobs fields
                body = _without_logprobs(body)
            limit = fault.count if fault.kind in ("drop", "eof") else None
            self._forward(body, event_limit=limit, clean_eof=fault.kind == "eof")

    # -- canned answers -----------------------------------------------------------------------

    def _send_plain(
        self,
        status: int,
        content_type: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._request_done()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _send_error_status(self, status: int) -> None:
        err_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "error")
        payload = json.dumps(
            {
                "error": {
                    "message": f"injected fault: HTTP {status}",
                    "type": err_type,
                    "code": status,
                }
            }
        ).encode()
        extra = {"Retry-After": "0"} if status == 429 else {}
        self._send_plain(status, "application/json", payload, extra)

    def _start_sse(self, *, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end_chunks(self) -> None:
        self._request_done()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_garbage_stream(self) -> None:
        self._start_sse(chunked=True)
        self._write_chunk(b"data: {this is not json\n\n")
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    def _stall(self, seconds: float) -> None:
        self._start_sse(chunked=True)
        deadline = time.monotonic() + seconds
        while not self.state.closing.is_set() and not self._client_gone():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.state.closing.wait(min(left, 0.05))
        self._abort()

    def _client_gone(self) -> bool:
        ready, _, _ = select.select([self.connection], [], [], 0)
        if not ready:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _abort(self) -> None:
        """Close the client socket without finishing the response."""
        self._request_done()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- forwarding ---------------------------------------------------------------------------

    def _forward(self, body: bytes, *, event_limit: int | None, clean_eof: bool) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = f"{self.upstream_host}:{self.upstream_port}"
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=self.state.upstream_timeout
        )
        try:
            try:
                target = self.upstream_prefix + self.path
                conn.request(self.command, target, body=body or None, headers=headers)
                upstream = conn.getresponse()
            except OSError as exc:
                payload = json.dumps(
                    {"error": {"message": f"proxy: upstream unreachable: {exc}", "type": "proxy"}}
                ).encode()
                self._send_plain(502, "application/json", payload)
                return
            self._relay(upstream, event_limit=event_limit, clean_eof=clean_eof)
        finally:
            conn.close()

    def _relay(
        self, upstream: http.client.HTTPResponse, *, event_limit: int | None, clean_eof: bool
    ) -> None:
        content_type = upstream.getheader("Content-Type", "")
        is_sse = content_type.split(";")[0].strip().lower() == "text/event-stream"
        no_body = self.command == "HEAD" or upstream.status in (204, 304)
        self.send_response(upstream.status, upstream.reason)
        for name, value in upstream.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() not in ("date", "server"):
                self.send_header(name, value)
        if no_body:
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.wfile.flush()
            return
        chunked = not clean_eof
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()

        write = self._write_chunk if chunked else self._write_raw
        if is_sse:
            events = 0
            pending = False  # inside an event that has a data line
            while True:
                if event_limit is not None and events >= event_limit:
                    break
                line = upstream.readline()
                if not line:
                    break
                stripped = line.strip()
                if stripped in (b"data: [DONE]", b"data:[DONE]"):
                    # The server's last event: the client may send its next request as soon as
                    # it reads this, before the upstream connection reaches EOF here.
                    self._request_done()
                write(line)
                if stripped.startswith(b"data:"):
                    pending = True
                elif not stripped and pending:
                    events += 1
                    pending = False
            if event_limit is not None:
                self._abort()
                return
        else:
            while True:
                data = upstream.read1(65536)
                if not data:
                    break
                write(data)
            if event_limit is not None:
                self._abort()
                return
        if chunked:
            self._end_chunks()

    def _write_raw(self, data: bytes) -> None:
        if data:
            self.wfile.write(data)
            self.wfile.flush()


# --------------------------------------------------------------------------------------------
# Convenience
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def served_with_proxy(
    model: str | os.PathLike[str], **server_kwargs: Any
) -> Iterator[tuple[LlamaServer, FaultProxy]]:
    """A `LlamaServer` on `model` and a `FaultProxy` in front of it, both stopped on exit."""
    with LlamaServer(model, **server_kwargs) as server, FaultProxy(server.root_url) as proxy:
        yield server, proxy
