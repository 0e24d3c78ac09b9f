"""HTTP errors of `reason serve`, without FastAPI: the engine process builds them too.

Bad input 400, a wrong key 401, an unknown model 404, a body too large 413, a full queue 429, no
free branch slots in time, a cancelled run, a dead engine process or a server shutting down 503
(429 and 503 with Retry-After); anything unexpected is a 500 whose body says what failed.
"""

from __future__ import annotations

from typing import Any

from reasoncli.engine.admission import PoolBusy
from reasoncli.errors import ReasonError, UsageError
from reasoncli.serve.request import ModelNotFound


class Cancelled(ReasonError):
    """The run was stopped (client gone, server shutting down) before it had a result."""


class EngineDied(ReasonError):
    """The engine process ended (a signal, a native crash) while the run was in it."""


class ShuttingDown(ReasonError):
    """The server got SIGTERM or Ctrl-C: no new runs, and a run that has not stopped by the
    shutdown deadline ends without its result."""


class ApiError(Exception):
    """An error with its HTTP status and OpenAI error fields; pickles across the process pipe."""

    def __init__(
        self, status: int, message: str, *, kind: str, code: str | None = None, retry: int = 0
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.retry = (
            status,
            message,
            kind,
            code,
            retry,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.status, self.message, self.kind, self.code, self.retry))

    def body(self) -> dict[str, Any]:
        return error_body(self.message, kind=self.kind, code=self.code)

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry)} if self.retry else None


def _rebuild(status: int, message: str, kind: str, code: str | None, retry: int) -> ApiError:
    return ApiError(status, message, kind=kind, code=code, retry=retry)


def error_body(
    message: str, *, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def api_error(exc: BaseException) -> ApiError:
    """The HTTP error for an exception from parsing or running a request."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ModelNotFound):
        return ApiError(404, str(exc), kind="invalid_request_error", code="model_not_found")
    if isinstance(exc, UsageError):
        return ApiError(400, str(exc), kind="invalid_request_error", code="invalid_option")
    if isinstance(exc, PoolBusy):
        status = 429 if exc.queue_full else 503
        return ApiError(status, str(exc), kind="server_busy", code="busy", retry=exc.retry_after_s)
    if isinstance(exc, Cancelled):
        return ApiError(503, str(exc), kind="server_busy", code="cancelled", retry=1)
    if isinstance(exc, ShuttingDown):
        return ApiError(503, str(exc), kind="server_error", code="shutting_down", retry=5)
    if isinstance(exc, EngineDied):
        return ApiError(503, str(exc), kind="server_error", code="engine_died", retry=2)
    if isinstance(exc, ReasonError):
        return ApiError(500, str(exc), kind="server_error", code="run_failed")
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error")
