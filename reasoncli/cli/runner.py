"""Run one strategy for the CLI: load the model, pick renderers, write the answer.

Commands parse their flags into a `RunRequest` and hand it here, so `ask`, `think` and later
commands share one path for progress, output modes, Ctrl-C and exit codes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from reasoncli import api
from reasoncli.cli.io import StdoutClosed, Terminal
from reasoncli.cli.signals import ReaderGone, interrupt_code, run_signals
from reasoncli.errors import BranchesFailed, ExitCode, ReasonError, UsageError
from reasoncli.events import Event
from reasoncli.results import Result

if TYPE_CHECKING:
    from reasoncli.engine.protocols import ModelSession
    from reasoncli.models.catalog import Catalog
    from reasoncli.reasoning import HideThinking
    from reasoncli.session import Session


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
    hide_thinking: bool = False  # the trace stays out of the live view and --jsonl events


@dataclass
class RunRequest:
    strategy: str
    question: str
    options: Any  # StrategyOptions
    model: ModelRequest = field(default_factory=ModelRequest)
    output: OutputRequest = field(default_factory=OutputRequest)
    sampling_overrides: dict[str, Any] = field(default_factory=dict)
    log: bool = True  # keep the run in `reason logs` (also off with REASON_NO_LOG=1)
    skip_thinking: bool = False  # --reasoning-budget 0: the prompt closes an empty thought
    thinking_budget: int | None = None  # --reasoning-budget, for servers that apply it


BACKENDS = ("auto", "local", "openai")


def load_session(request: ModelRequest) -> ModelSession:
    """Resolve a catalog name or .gguf path, check the file, and load it; or open a session on
    an OpenAI-compatible server when `--backend openai`, a base URL or the entry says so."""
    from reasoncli.models.catalog import load_catalog

    catalog = load_catalog()
    if _wants_remote(request, catalog):
        from reasoncli.remote.session import RemoteRequest, open_remote_session

        remote = request.remote or RemoteRequest()
        return open_remote_session(replace(remote, model=request.name), catalog)
    return _load_local(request, catalog)


def load_local_session(request: ModelRequest) -> Session:
    """A model loaded in this process (`reason serve`'s): `--backend local` whatever it says."""
    from reasoncli.models.catalog import load_catalog

    request = replace(request, backend="local")
    catalog = load_catalog()
    _wants_remote(request, catalog)  # refuses a registry entry that a server serves
    return _load_local(request, catalog)


def _load_local(request: ModelRequest, catalog: Catalog) -> Session:
    from reasoncli.models.gguf_file import read_gguf_info
    from reasoncli.models.resolve import resolve_model
    from reasoncli.session import Session, SessionOptions

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


def _wants_remote(request: ModelRequest, catalog: Catalog) -> bool:
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
    """Run the strategy and write the result; returns the exit code.

    SIGTERM and SIGHUP end the run as Ctrl-C does (see `reasoncli.cli.signals`): the partial
    result is printed and logged, and the exit code is 128 + the signal.
    """
    with run_signals():
        try:
            return _execute(request, term or Terminal())
        except BrokenPipeError:
            raise StdoutClosed from None


def _execute(request: RunRequest, term: Terminal) -> int:
    from reasoncli.strategies.base import get_strategy

    strategy = get_strategy(request.strategy)
    strategy.check(request.options)
    try:
        session = load_session(request.model)
    except KeyboardInterrupt as exc:  # a signal while the model loads: nothing computed yet
        _log_run(request, request.model.name or "", None, _stopped_status(exc), None, term, True)
        raise
    reader = _Reader()
    try:
        prepared = api.prepare(
            session,
            strategy,
            request.options,
            sampling=request.sampling_overrides,
            skip_thinking=request.skip_thinking,
            thinking_budget=request.thinking_budget,
        )
        request.options = prepared.options  # the history keeps the sampling it ran with
        try:
            with _progress(request, term, reader, _trace_filter(request, session)) as emit:
                result = prepared(request.question, emit)
        except ReasonError as exc:
            _log_run(request, session.name, None, exc.exit_code, exc, term)
            raise
        except KeyboardInterrupt as exc:  # stopped before the strategy could catch it
            _log_run(request, session.name, None, _stopped_status(exc), None, term, True)
            if isinstance(exc, ReaderGone):
                raise StdoutClosed from None
            raise
    finally:
        session.close()
    if reader.gone:  # the run stopped because stdout's reader left: keep it, print nothing
        _log_run(request, result.model, result, ExitCode.OK, None, term)
        raise StdoutClosed
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
    except KeyboardInterrupt as exc:  # a signal while the answer was being written
        status = _stopped_status(exc)
        raise
    except OSError:
        if not result.interrupted:
            raise
        status = interrupt_code()  # SIGHUP: the terminal that would show it is gone
        return status
    finally:
        _log_run(request, result.model, result, status, error, term)


def _stopped_status(exc: KeyboardInterrupt) -> int:
    """The exit status of a run a signal (or stdout's reader leaving) ended."""
    if isinstance(exc, ReaderGone):
        return ExitCode.OK
    return getattr(exc, "exit_code", ExitCode.INTERRUPTED)


def _log_run(
    request: RunRequest,
    model: str,
    result: Result | None,
    status: int,
    error: ReasonError | None,
    term: Terminal,
    interrupted: bool | None = None,
) -> None:
    """Keep the run in the history after its answer is out; a history that cannot be written
    costs one warning line on stderr, never the answer or the exit code.

    `interrupted` marks a run stopped before it had a result (a signal while the model
    loaded); by default it is the result's own flag."""
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
            interrupted=interrupted,
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
        return interrupt_code()
    if result.answer is None:
        if failed := all_branches_failed(result):  # in every output mode: nothing was generated
            raise failed
        if not (output.json or output.jsonl):
            raise ReasonError(
                f"no answer could be extracted from {len(result.branches)} branch(es)"
                f"{_failed_note(result)}; try more --max-tokens or --json to see the text"
            )
    return ExitCode.OK


def all_branches_failed(result: Result) -> BranchesFailed | None:
    """The error for a run whose every branch failed (a remote server answered each of its
    requests with an error until the retries ran out), or None.

    Only branches that failed count: branches that generated text in which no answer could be
    found are the model's result, printed as one (answer null with --json, exit 0)."""
    from reasoncli.engine.branch_state import FAILED

    branches = result.branches
    if not branches or any(b.finish_reason != FAILED for b in branches):
        return None
    first = next((b.error for b in branches if b.error), "no reason given")
    return BranchesFailed(f"all {len(branches)} branch(es) failed; the first: {first}")


def _failed_note(result: Result) -> str:
    from reasoncli.engine.branch_state import FAILED

    failed = [b for b in result.branches if b.finish_reason == FAILED]
    if not failed:
        return ""
    return f" ({len(failed)} of them failed: {failed[0].error or 'no reason given'})"


def _write_line(term: Terminal, text: str) -> None:
    term.stdout.write(text + "\n")
    term.stdout.flush()


def _summary(result: Result, term: Terminal) -> None:
    """On Ctrl-C, show the partial vote on stderr even when it is not a TTY (and say nothing
    when stderr is gone: after SIGHUP the terminal is)."""
    from reasoncli.render.summary import render_summary

    with contextlib.suppress(OSError):
        render_summary(result, term.err_console())


class _Reader:
    """Whether stdout's reader went away during the run (`reason ask ... --jsonl | head`)."""

    gone: bool = False


def _trace_filter(request: RunRequest, session: ModelSession) -> HideThinking | None:
    """--hide-thinking: a filter that holds each branch's trace out of its streamed text."""
    if not request.output.hide_thinking or not session.think_tags or session.skip_thinking:
        return None
    from reasoncli.reasoning import HideThinking, opens_thinking

    probe = session.prompt_text("?")  # a remote chat model's is ChatMessages, not text
    opened = isinstance(probe, str) and opens_thinking(probe, session.think_tags)
    return HideThinking(session.think_tags, opened)


@contextlib.contextmanager
def _progress(
    request: RunRequest, term: Terminal, reader: _Reader, hide: Any = None
) -> Iterator[Any]:
    """Pick the event sinks: JSONL on stdout, a live view or plain lines on stderr, or nothing.

    A sink whose stream breaks stops getting events instead of ending the run by surprise: a
    closed stdout pipe stops the run once, like Ctrl-C (`ReaderGone`), so the partial run is
    still logged; a stderr that is gone (a hung-up terminal) just stops being drawn on.
    """
    output = request.output
    sinks: list[Any] = []
    mode = "none" if output.quiet else output.progress
    if mode == "auto":
        mode = "live" if term.stderr_is_tty else "none"
    with contextlib.ExitStack() as stack:
        if output.jsonl:
            from reasoncli.render.jsonl import JsonlWriter

            sinks.append(_PipeSink(JsonlWriter(term.stdout).handle, reader, term))
        if mode == "live":
            console = term.err_console()
            if request.strategy == "think":
                from reasoncli.render.stream import ThinkingStream

                sinks.append(_StderrSink(stack.enter_context(ThinkingStream(console)).handle))
            else:
                from reasoncli.render.live import LiveView

                view = stack.enter_context(LiveView(console, title="reason"))
                sinks.append(_StderrSink(view.handle))
        elif mode == "plain":
            from reasoncli.render.plain import PlainProgress

            sinks.append(_StderrSink(PlainProgress(term.stderr).handle))

        def emit(event: Event) -> None:
            if hide is not None and (event := hide(event)) is None:
                return
            for sink in sinks:
                sink(event)

        yield emit


class _PipeSink:
    """Events on stdout; when its reader leaves, stdout goes to /dev/null and the run is
    stopped once with `ReaderGone`, which strategies treat as Ctrl-C."""

    def __init__(self, handle: Any, reader: _Reader, term: Terminal) -> None:
        self.handle, self.reader, self.term = handle, reader, term

    def __call__(self, event: Event) -> None:
        if self.reader.gone:
            return
        try:
            self.handle(event)
        except (BrokenPipeError, ValueError):
            self.reader.gone = True
            _silence(self.term.stdout)
            raise ReaderGone from None


class _StderrSink:
    """A view on stderr that stops drawing when stderr fails (EIO after SIGHUP)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.broken = False

    def __call__(self, event: Event) -> None:
        if self.broken:
            return
        try:
            self.handle(event)
        except OSError:
            self.broken = True


def _silence(stream: Any) -> None:
    """Point a closed pipe's file descriptor at /dev/null, so buffered bytes and later
    flushes (the interpreter's own at exit included) do not raise again."""
    import os

    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
