"""The FastAPI app: OpenAI routes in front of the engine process.

The model is not here: runs go to the engine process (engine_proc.py, worker.py), so a native
crash there costs the runs in flight a 503, not the server. Errors are OpenAI-shaped (errors.py
lists the statuses). Nothing here prints: the CLI command prints the startup line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from reasoncli.events import BranchText, Event
from reasoncli.reasoning import ReasoningStream
from reasoncli.results import Result
from reasoncli.serve import responses as oai
from reasoncli.serve.engine_proc import EngineProcess, Job, is_done_marker
from reasoncli.serve.errors import ApiError, api_error
from reasoncli.serve.request import (
    Limits,
    RunSpec,
    chat_messages,
    completion_prompt,
    parse_run,
    served_model_names,
)
from reasoncli.serve.schema import openapi_document
from reasoncli.serve.worker import RunOrder
from reasoncli.strategies.base import get_strategy

# How often a non-streaming request checks whether its client is still there.
DISCONNECT_POLL_S = 0.25


@dataclass
class ServerState:
    engine: EngineProcess
    model_name: str
    defaults: dict[str, Any] = field(default_factory=dict)  # strategy and its options
    api_key: str | None = None
    jobs: set[Job] = field(default_factory=set)
    started: float = field(default_factory=time.time)
    limits: Limits = field(default_factory=Limits)

    def cancel_all(self) -> None:
        self.engine.cancel_all()


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers())


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="reason serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.reason = state
    served = state.model_name
    engine = state.engine
    document = openapi_document(served, state.limits, auth=bool(state.api_key))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return document

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        if state.api_key and request.url.path.startswith("/v1/"):
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            ok = scheme.lower() == "bearer" and secrets.compare_digest(
                token.strip().encode(), state.api_key.encode()
            )
            if not ok:
                return error_response(
                    ApiError(
                        401, "invalid or missing API key", kind="invalid_request_error",
                        code="invalid_api_key",
                    )
                )  # fmt: skip
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        info = engine.info
        return {
            "status": "ok" if info.state == "ready" else info.state,
            "model": served,
            "requests_in_flight": len(state.jobs),
            **await engine.stats(),  # branch slots and batching counters; {} while restarting
            "engine": {
                "pid": info.pid,
                "state": info.state,
                "restarts": info.restarts,
                "last_exit": info.last_exit,
            },
            "limits": state.limits.to_json(),
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        created = int(state.started)
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "reason",
                    "limits": state.limits.to_json(),
                }
                for name in served_model_names(served)
            ],
        }

    def run_of(body: dict[str, Any]) -> RunSpec:
        """The strategy run a request's body asks for, within this server's limits."""
        return parse_run(
            body,
            served=served,
            defaults=state.defaults,
            limits=state.limits,
            effort_budgets=engine.thinking.get("effort_budgets"),
        )

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await _json(request, state.limits.max_body_bytes)
        try:
            question, history = chat_messages(body)
            spec = run_of(body)
        except Exception as exc:
            raise api_error(exc) from None
        return await _serve(request, body, spec, question, history, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        body = await _json(request, state.limits.max_body_bytes)
        try:
            question = completion_prompt(body)
            spec = run_of(body)
        except Exception as exc:
            raise api_error(exc) from None
        return await _serve(request, body, spec, question, [], chat=False)

    async def _serve(
        request: Request,
        body: dict[str, Any],
        spec: RunSpec,
        question: str,
        history: list[dict[str, str]],
        *,
        chat: bool,
    ) -> Any:
        group = engine.new_group()
        jobs: list[Job] = []
        try:
            for i in range(spec.n):
                order = RunOrder(
                    rid=0,
                    strategy=spec.strategy,
                    question=question,
                    options=replace(spec.options, seed=spec.options.seed + i * 10_000),
                    sampling=spec.sampling,
                    history=history,
                    forward_events=spec.stream,
                    group=group,
                    group_runs=spec.n,
                    budget_tokens=state.limits.max_request_tokens,
                    skip_thinking=spec.skip_thinking,
                )
                job = await engine.submit(order)
                jobs.append(job)
                state.jobs.add(job)
                job.on_finished = state.jobs.discard  # in flight until the engine says done
        except BaseException:
            for j in jobs:
                j.cancel()
            raise
        model = body["model"]
        rid = oai.new_id("chatcmpl" if chat else "cmpl")
        if spec.stream:
            first = await _first_event(jobs)
            if first is not None:  # failed before it started (busy, too long): a plain error
                for j in jobs:
                    j.cancel()
                raise api_error(first)
            return StreamingResponse(
                _stream(request, jobs, spec, rid, model, chat=chat),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        try:
            results = await _results(request, jobs)
        except Exception as exc:
            for j in jobs:
                j.cancel()
            raise api_error(exc) from None
        cached = sum(j.cached_tokens for j in jobs)
        return oai.completion(
            rid, model, spec.strategy, results, think_tags(), chat=chat, cached=cached
        )

    def think_tags() -> tuple[str, str] | None:
        tags = engine.thinking.get("think_tags")
        return (tags[0], tags[1]) if tags else None

    def trace_streams(spec: RunSpec, n: int, chat: bool) -> dict[int, ReasoningStream]:
        """Live traces for runs that keep the one branch they start (think); others send the
        kept branch's trace once the run has decided it."""
        tags = think_tags()
        if not (chat and tags and get_strategy(spec.strategy).info.one_chain):
            return {}
        opens = bool(engine.thinking.get("opens_thinking")) and not spec.skip_thinking
        return {i: ReasoningStream(tags, open_at_start=opens) for i in range(n)}

    async def _results(request: Request, jobs: list[Job]) -> list[Result]:
        pending = {asyncio.ensure_future(j.finished.wait()) for j in jobs}
        while pending:
            _, pending = await asyncio.wait(pending, timeout=DISCONNECT_POLL_S)
            if pending and await request.is_disconnected():
                for j in jobs:
                    j.cancel()
        return [await j.wait() for j in jobs]

    async def _first_event(jobs: list[Job]) -> BaseException | None:
        """Wait until every run has started (or one has failed), so errors keep their status."""
        for job in jobs:
            await job.started.wait()
            if job.finished.is_set() and job.error is not None and job.result is None:
                return job.error
        return None

    async def _stream(
        request: Request,
        jobs: list[Job],
        spec: RunSpec,
        rid: str,
        model: str,
        *,
        chat: bool,
    ) -> AsyncIterator[str]:
        results: list[Result] = []
        watcher = asyncio.ensure_future(_watch_disconnect(request, jobs))
        try:
            yield oai.sse(oai.chunk(rid, model, chat=chat, role=chat, text="" if chat else None))
            merged: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
            pumps = [asyncio.ensure_future(_pump(i, j, merged)) for i, j in enumerate(jobs)]
            done = 0
            by_index: dict[int, Result] = {}
            traces = trace_streams(spec, len(jobs), chat)
            while done < len(jobs):
                index, item = await merged.get()
                if isinstance(item, Event):
                    yield oai.sse_comment({"choice": index, **item.to_json()})
                    live = traces.get(index)
                    if live is not None and isinstance(item, BranchText):
                        if piece := live.feed(item.text, forced=item.forced):
                            yield oai.sse(
                                oai.chunk(rid, model, chat=chat, index=index, thinking=piece)
                            )
                    continue
                done += 1
                job = jobs[index]
                if job.error is not None:
                    err = api_error(job.error)
                    yield oai.sse(err.body())
                    continue
                assert job.result is not None
                by_index[index] = job.result
                trace = oai.reasoning(job.result)
                live = traces.get(index)
                rest = live.rest(trace) if live is not None else trace
                if chat and rest:
                    yield oai.sse(oai.chunk(rid, model, chat=chat, index=index, thinking=rest))
                text = oai.content(job.result, think_tags())
                yield oai.sse(oai.chunk(rid, model, chat=chat, index=index, text=text))
                extra = {"reason": {"strategy": spec.strategy, **oai.result_json(job.result)}}
                finish = oai.finish_reason(job.result)
                yield oai.sse(
                    oai.chunk(rid, model, chat=chat, index=index, finish=finish, extra=extra)
                )
            for p in pumps:
                await p
            results = [by_index[i] for i in sorted(by_index)]
            if spec.include_usage:
                cached = sum(j.cached_tokens for j in jobs)
                yield oai.sse(
                    oai.usage_chunk(rid, model, chat=chat, results=results, cached=cached)
                )
            yield oai.sse("[DONE]")
        finally:  # also when the client disconnects: the runs stop and free their slots
            watcher.cancel()
            for j in jobs:
                j.cancel()

    async def _watch_disconnect(request: Request, jobs: list[Job]) -> None:
        """Cancel the runs as soon as the client goes away, not at the next failed write."""
        while not all(j.finished.is_set() for j in jobs):
            if await request.is_disconnected():
                for j in jobs:
                    j.cancel()
                return
            await asyncio.sleep(DISCONNECT_POLL_S)

    async def _pump(index: int, job: Job, merged: asyncio.Queue[tuple[int, Any]]) -> None:
        while True:
            item = await job.events.get()
            if is_done_marker(item):
                await merged.put((index, None))
                return
            await merged.put((index, item))

    return app


async def _json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, read no further than `max_bytes` (HTTP 413 beyond)."""
    too_big = ApiError(
        413,
        f"the request body is over {max_bytes} bytes (reason serve --max-body-bytes)",
        kind="invalid_request_error",
        code="body_too_large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > max_bytes:
            raise too_big
    try:
        body = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "the request body must be JSON", kind="invalid_request_error") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", kind="invalid_request_error")
    return body


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python's parser takes them by default)."""
    raise ValueError(f"{name} is not valid JSON")
