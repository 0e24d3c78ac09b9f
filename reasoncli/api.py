"""reason as a library: run a strategy on a question, get its `Result` or watch its events.

    from reasoncli import api

    result = api.ask("What is 2+3?", strategy="vote", n=4)
    print(result.answer, f"{result.share:.0%}", result.generated_tokens)
    for event in api.stream("Is 1001 prime?", strategy="think", max_tokens=256):
        print(event)

Options go by their field names (`reasoncli.options`): the strategy's (`branches`, `max_tokens`,
`early_stop`, ...), the sampling overrides (`temperature`, `top_p`, ...) and how the model is
loaded or reached (`threads`, `gpu_layers`, `base_url`, ...); a short flag is a name too (`n`,
`t`). Values are checked as the CLI checks them (`UsageError`). `model` is a registry name,
alias or .gguf path (None: the default model); pass `session=` to reuse a loaded one
(`open_session`), which `ask` then leaves open.

`run` is the step every caller shares (the CLI, `reason serve`, `reason bench`, rollouts):
check the options, apply sampling overrides, run, and return the strategy's `Result`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from reasoncli.errors import UsageError
from reasoncli.events import Event, EventSink, discard
from reasoncli.options import (
    EngineFlags,
    SamplingOverrides,
    StrategyOptions,
    declared,
    every_option,
)
from reasoncli.results import Result

if TYPE_CHECKING:
    from reasoncli.cli.runner import ModelRequest
    from reasoncli.engine.protocols import ModelSession
    from reasoncli.strategies.base import Strategy

__all__ = ["Prepared", "Stream", "ask", "model_request", "open_session", "prepare", "run", "stream"]


def model_request(model: str | None, flags: EngineFlags) -> ModelRequest:
    """Which model to load, and how, from its name and the engine flags (`EngineFlags`)."""
    from reasoncli.cli.runner import ModelRequest
    from reasoncli.remote.session import RemoteRequest

    remote = RemoteRequest(
        flags.base_url, model, flags.api_key_file, flags.max_concurrency, flags.timeout
    )
    return ModelRequest(
        model,
        flags.threads,
        flags.gpu_layers,
        flags.flash_attn,
        flags.verbose,
        flags.backend,
        remote,
    )


def open_session(model: str | None = None, **engine: Any) -> ModelSession:
    """Load `model` (None: the default) with the engine flags given by name (`threads`,
    `gpu_layers`, `base_url`, ...); the caller closes it."""
    from reasoncli.cli.runner import load_session
    from reasoncli.option_checks import check_options

    check_options(engine, names="field")
    return load_session(model_request(model, EngineFlags(**engine)))


@dataclass(frozen=True)
class Prepared:
    """A strategy with checked options on a session that can run it: call it on a question."""

    strategy: Strategy
    options: StrategyOptions
    session: ModelSession

    def __call__(self, question: str, emit: EventSink = discard) -> Result:
        return self.strategy.run(question, self.session, self.options, emit)


def prepare(
    session: ModelSession,
    strategy: str | Strategy,
    options: StrategyOptions | None = None,
    *,
    sampling: Mapping[str, Any] | None = None,
    skip_thinking: bool | None = None,
    thinking_budget: int | None = None,
) -> Prepared:
    """Everything before a run: check the options (UsageError) and that the session can run
    the strategy (a name or an instance), apply the `sampling` overrides to the model's
    sampling, and set the session's thinking (`skip_thinking`; `thinking_budget`, the
    `--reasoning-budget` a server applies) for this and later runs."""
    from reasoncli.strategies.base import get_strategy

    runner = get_strategy(strategy) if isinstance(strategy, str) else strategy
    options = options or StrategyOptions()
    runner.check(options)
    session.check_strategy(runner.info)
    if sampling:
        base = options.sampling or session.sampling
        options = replace(options, sampling=replace(base, **sampling))
    if skip_thinking is not None:
        session.skip_thinking = skip_thinking
    if thinking_budget is not None:
        session.pass_thinking_budget(thinking_budget)
    return Prepared(runner, options, session)


def run(
    question: str,
    session: ModelSession,
    strategy: str | Strategy,
    options: StrategyOptions | None = None,
    emit: EventSink = discard,
    **how: Any,
) -> Result:
    """Run `strategy` on `question` with `session`'s model: `prepare` (its keywords are
    `how`), then the run, whose events go to `emit`; returns the strategy's `Result`."""
    return prepare(session, strategy, options, **how)(question, emit)


def ask(
    question: str,
    strategy: str = "vote",
    *,
    model: str | None = None,
    session: ModelSession | None = None,
    emit: EventSink = discard,
    log: bool = False,
    **options: Any,
) -> Result:
    """Answer `question` with `strategy`; `options` by name (see the module docstring).

    Loads `model` unless a `session` is given, and closes what it loaded. With `log=True` the
    run is kept in `reason logs` as the CLI keeps its runs.
    """
    prepared = _prepare(question, strategy, model, session, options)
    return prepared.run(emit, log=log)


def stream(
    question: str,
    strategy: str = "vote",
    *,
    model: str | None = None,
    session: ModelSession | None = None,
    **options: Any,
) -> Stream:
    """The run's events as they happen (`for event in api.stream(...)`); its `result` once
    they end. Leaving the loop early stops the run, as Ctrl-C stops the CLI's."""
    prepared = _prepare(question, strategy, model, session, options)
    return Stream(prepared.run)


@dataclass
class _Prepared:
    """A run whose options are checked, before the model is loaded."""

    question: str
    strategy: Strategy
    options: StrategyOptions
    sampling: dict[str, Any]
    model: str | None
    engine: dict[str, Any]
    session: Any

    def run(self, emit: EventSink, *, log: bool = False) -> Result:
        session = self.session or open_session(self.model, **self.engine)
        try:
            result = run(
                self.question, session, self.strategy, self.options, emit, sampling=self.sampling
            )
        finally:
            if self.session is None:
                session.close()
        if log:
            from reasoncli.history import record_run

            record_run(
                self.question,
                result.model,
                self.strategy.info.name,
                self.options,
                result,
                source="api",
            )
        return result


_SHORT = {
    flag.lstrip("-"): d.name
    for d in every_option().values()
    for flag in d.flags[1:]
    if not flag.startswith("--")
}


def _prepare(
    question: str, strategy: str, model: str | None, session: Any, given: dict[str, Any]
) -> _Prepared:
    from reasoncli.option_checks import check_options
    from reasoncli.strategies.base import get_strategy

    values = {_SHORT.get(k, k): v for k, v in given.items()}
    groups = [
        {d.name for d in declared(cls)} for cls in (StrategyOptions, SamplingOverrides, EngineFlags)
    ]
    unknown = sorted(set(values) - set().union(*groups))
    if unknown:
        known = ", ".join(sorted(set().union(*groups)))
        raise UsageError(f"unknown option {unknown[0]!r}; the options: {known}")
    picked = [{k: v for k, v in values.items() if k in names} for names in groups]
    strategy_values, sampling, engine = picked
    if session is not None and engine:
        raise UsageError(f"{next(iter(engine))!r} sets how a model loads; the session is loaded")
    runner = get_strategy(strategy)
    options = StrategyOptions.given(**strategy_values)
    runner.check(options)
    check_options(sampling, names="field")
    return _Prepared(question, runner, options, sampling, model, engine, session)


_DONE = object()


class Stream:
    """Events of a run on a thread of its own, as an iterator; `result` once it has ended.

    The strategy reports through `emit` on its thread; the iterator hands each event over as it
    comes. Breaking out of the loop stops the run at its next event, as Ctrl-C does (the
    partial result has `interrupted` set), and waits for it to end; an error in the run is
    raised from the loop.
    """

    def __init__(self, work: Callable[[EventSink], Result]) -> None:
        self._work = work
        self._events: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._stopped = False
        self._error: BaseException | None = None
        self.result: Result | None = None

    def __iter__(self) -> Iterator[Event]:
        thread = threading.Thread(target=self._run, name="reason-stream", daemon=True)
        thread.start()
        try:
            while (item := self._events.get()) is not _DONE:
                yield item
        finally:
            self._stop.set()
            thread.join()
        if self._error is not None:
            raise self._error

    def _emit(self, event: Event) -> None:
        if self._stop.is_set():
            if not self._stopped:
                self._stopped = True  # once, like one Ctrl-C: the strategy may emit more
                raise KeyboardInterrupt
            return
        self._events.put(event)

    def _run(self) -> None:
        try:
            self.result = self._work(self._emit)
        except BaseException as exc:  # raised again by the iterator, on the caller's thread
            self._error = exc
        finally:
            self._events.put(_DONE)
