"""Run one strategy for the CLI: load the model, pick renderers, write the answer.

Commands parse their flags into a `RunRequest` and hand it here, so `ask`, `think` and later
commands share one path for progress, output modes, Ctrl-C and exit codes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from reasoncli.cli.io import StdoutClosed, Terminal
from reasoncli.errors import ExitCode, ReasonError, UsageError
from reasoncli.events import Event
from reasoncli.results import Result


@dataclass
class ModelRequest:
    name: str | None = None
    threads: int | None = None
    gpu_layers: int | None = None
    flash_attn: bool = True
    verbose: bool = False
    backend: str = "auto"  # auto: remote when a base URL or a remote registry entry says so
    remote: Any = None  # reasoncli.remote.session.RemoteRequest


@dataclass
class OutputRequest:
    json: bool = False
    jsonl: bool = False
    quiet: bool = False
    progress: str = "auto"  # auto | live | plain | none


@dataclass
class RunRequest:
    strategy: str
    question: str
    options: Any  # StrategyOptions
    model: ModelRequest = field(default_factory=ModelRequest)
    output: OutputRequest = field(default_factory=OutputRequest)
    sampling_overrides: dict[str, Any] = field(default_factory=dict)
    log: bool = True  # keep the run in `reason logs` (also off with REASON_NO_LOG=1)


BACKENDS = ("auto", "local", "openai")


def load_session(request: ModelRequest) -> Any:
    """Resolve a catalog name or .gguf path, check the file, and load it; or open a session on
    an OpenAI-compatible server when `--backend openai`, a base URL or the entry says so."""
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.gguf_file import read_gguf_info
    from reasoncli.models.resolve import resolve_model
    from reasoncli.session import Session, SessionOptions

    catalog = load_catalog()
    if _wants_remote(request, catalog):
        from reasoncli.remote.session import RemoteRequest, open_remote_session

        remote = request.remote or RemoteRequest()
        return open_remote_session(replace(remote, model=request.name), catalog)
    resolved = resolve_model(request.name, catalog)
    read_gguf_info(resolved.path)  # one-line error for a missing, foreign or truncated file
    return Session.load(
        resolved,
        SessionOptions(
            threads=request.threads,
            gpu_layers=request.gpu_layers,
            flash_attn=request.flash_attn,
            verbose=request.verbose,
        ),
    )


def _wants_remote(request: ModelRequest, catalog: Any) -> bool:
    if request.backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {request.backend!r}")
    entry = catalog.find(request.name) if request.name else None
    is_remote_entry = entry is not None and entry.source.openai is not None
    if request.backend == "local":
        if is_remote_entry:
            raise UsageError(f"model {request.name!r} is served remotely; drop --backend local")
        return False
    has_url = request.remote is not None and request.remote.base_url
    if request.backend == "openai" and not (has_url or is_remote_entry):
        raise UsageError("--backend openai needs --base-url or REASON_BASE_URL")
    return bool(request.backend == "openai" or has_url or is_remote_entry)


def execute(request: RunRequest, term: Terminal | None = None) -> int:
    """Run the strategy and write the result; returns the exit code."""
    try:
        return _execute(request, term or Terminal())
    except BrokenPipeError:
        raise StdoutClosed from None


def _execute(request: RunRequest, term: Terminal) -> int:
    from reasoncli.strategies.base import get_strategy

    strategy = get_strategy(request.strategy)
    strategy.check(request.options)
    session = load_session(request.model)
    try:
        session.check_strategy(strategy.info)
        if request.sampling_overrides:
            request.options.sampling = replace(session.sampling, **request.sampling_overrides)
        try:
            with _progress(request, term) as emit:
                result = strategy.run(request.question, session, request.options, emit)
        except ReasonError as exc:
            _log_run(request, session.name, None, exc.exit_code, exc, term)
            raise
        result.backend = session.backend_info()
    finally:
        session.close()
    status: int = ExitCode.ERROR
    error: ReasonError | None = None
    try:
        status = write_result(result, request.output, term)
        return status
    except ReasonError as exc:
        status, error = exc.exit_code, exc
        raise
    except BrokenPipeError:
        status = ExitCode.OK  # the answer was produced; its reader left early
        raise
    finally:
        _log_run(request, result.model, result, status, error, term)


def _log_run(
    request: RunRequest,
    model: str,
    result: Result | None,
    status: int,
    error: ReasonError | None,
    term: Terminal,
) -> None:
    """Keep the run in the history after its answer is out; a history that cannot be written
    costs one warning line on stderr, never the answer or the exit code."""
    from reasoncli.history import HistoryError, logging_disabled, record_run

    if not request.log or logging_disabled():
        return
    try:
        record_run(
            request.question,
            model,
            request.strategy,
            request.options,
            result,
            status,
            error=error,
        )
    except Exception as exc:  # HistoryError, a full disk, or a bug: the answer is already out
        if not isinstance(exc, HistoryError):
            exc = HistoryError(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            term.stderr.write(f"Warning: this run was not logged: {exc}\n")
            term.stderr.flush()


def write_result(result: Result, output: OutputRequest, term: Terminal) -> int:
    if output.jsonl:
        _write_line(term, json.dumps({"event": "result", **result.to_json()}))
    elif output.json:
        _write_line(term, json.dumps(result.to_json(), indent=2))
    elif result.answer is not None:
        _write_line(term, result.answer)
    if result.interrupted:
        if not (output.json or output.jsonl):
            _summary(result, term)
        return ExitCode.INTERRUPTED
    if result.answer is None and not (output.json or output.jsonl):
        raise ReasonError(
            f"no answer could be extracted from {len(result.branches)} branch(es); "
            "try more --max-tokens or --json to see the text"
        )
    return ExitCode.OK


def _write_line(term: Terminal, text: str) -> None:
    term.stdout.write(text + "\n")
    term.stdout.flush()


def _summary(result: Result, term: Terminal) -> None:
    """On Ctrl-C, show the partial vote on stderr even when it is not a TTY."""
    from reasoncli.render.summary import render_summary

    render_summary(result, term.err_console())


@contextlib.contextmanager
def _progress(request: RunRequest, term: Terminal) -> Iterator[Any]:
    """Pick the event sink: JSONL on stdout, a live view or plain lines on stderr, or nothing."""
    output = request.output
    sinks: list[Any] = []
    if output.jsonl:
        from reasoncli.render.jsonl import JsonlWriter

        sinks.append(JsonlWriter(term.stdout).handle)
    mode = "none" if output.quiet else output.progress
    if mode == "auto":
        mode = "live" if term.stderr_is_tty else "none"
    with contextlib.ExitStack() as stack:
        if mode == "live":
            console = term.err_console()
            if request.strategy == "think":
                from reasoncli.render.stream import ThinkingStream

                sinks.append(stack.enter_context(ThinkingStream(console)).handle)
            else:
                from reasoncli.render.live import LiveView

                view = stack.enter_context(LiveView(console, title="reason"))
                sinks.append(view.handle)
        elif mode == "plain":
            from reasoncli.render.plain import PlainProgress

            sinks.append(PlainProgress(term.stderr).handle)

        def emit(event: Event) -> None:
            for sink in sinks:
                sink(event)

        yield emit
