"""`reasoncli.api` on the real tiny GGUF model: ask, stream, run, and what they refuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reasoncli import api
from reasoncli.errors import UsageError
from reasoncli.events import BranchFinished, BranchText, Event, RunStarted
from reasoncli.options import StrategyOptions
from reasoncli.strategies.base import strategy_names

QUESTION = "What is 2+3?"


@pytest.fixture(scope="module")
def session(tiny_gguf: Path, threads: int) -> Iterator[object]:
    s = api.open_session(str(tiny_gguf), threads=threads)
    yield s
    s.close()


def test_ask_runs_the_strategy_on_a_loaded_session(session: object) -> None:
    result = api.ask(QUESTION, "vote", session=session, n=3, max_tokens=8, t=0.0)
    assert (result.question, result.strategy) == (QUESTION, "vote")
    assert len(result.branches) == 3 and result.model == session.name  # type: ignore[attr-defined]
    assert result.generated_tokens == sum(b.tokens for b in result.branches)
    assert result.backend["name"]  # made with the result, not set on it afterwards


def test_ask_loads_and_closes_the_model_it_names(tiny_gguf: Path) -> None:
    result = api.ask(QUESTION, "think", model=str(tiny_gguf), max_tokens=8, threads=1)
    assert result.strategy == "think" and len(result.branches) == 1
    assert result.details["thinking_tokens"] == result.branches[0].tokens


def test_run_applies_the_sampling_overrides_and_reports_events(session: object) -> None:
    events: list[Event] = []
    options = StrategyOptions(branches=2, max_tokens=6)
    greedy = {"temperature": 0.0}
    first = api.run(QUESTION, session, "vote", options, events.append, sampling=greedy)
    again = api.run(QUESTION, session, "vote", options, sampling=greedy)
    assert [b.text for b in first.branches] == [b.text for b in again.branches]
    assert first.branches[0].text == first.branches[1].text  # greedy: every seed agrees
    assert isinstance(events[0], RunStarted)
    assert sum(isinstance(e, BranchFinished) for e in events) == 2


def test_stream_yields_the_events_then_holds_the_result(session: object) -> None:
    run = api.stream(QUESTION, "vote", session=session, branches=2, max_tokens=6)
    events = list(run)
    assert isinstance(events[0], RunStarted)
    assert run.result is not None and len(run.result.branches) == 2
    assert not run.result.interrupted


def test_leaving_a_stream_early_stops_its_run(session: object) -> None:
    run = api.stream(QUESTION, "vote", session=session, branches=2, max_tokens=200)
    for event in run:
        if isinstance(event, BranchText):
            break
    assert run.result is not None and run.result.interrupted
    assert run.result.generated_tokens < 400


def test_auto_builds_one_result_for_every_phase(session: object) -> None:
    result = api.ask(
        QUESTION, "auto", session=session, budget_tokens=96, pilot=2, max_tokens=16, t=0.0
    )
    details = result.details
    assert details["tokens"]["total"] == result.generated_tokens
    assert result.generated_tokens == sum(b.tokens for b in result.branches)
    assert [b.label for b in result.branches[:2]] == ["pilot", "pilot"]
    assert result.backend["name"]


def test_options_are_checked_before_any_model_loads() -> None:
    with pytest.raises(UsageError, match="^--pilot must be at least 1, not 0$"):
        api.ask(QUESTION, "auto", model="/nonexistent/model.gguf", pilot=0)
    with pytest.raises(UsageError, match="^unknown option 'brnaches'"):
        api.ask(QUESTION, model="/nonexistent/model.gguf", brnaches=2)
    with pytest.raises(UsageError, match=r"^top_p must be in \(0, 1\], not 5$"):
        api.ask(QUESTION, model="/nonexistent/model.gguf", top_p=5)
    with pytest.raises(UsageError, match="unknown strategy 'nope'"):
        api.ask(QUESTION, "nope", model="/nonexistent/model.gguf")


@pytest.mark.parametrize("strategy", strategy_names())
def test_every_strategy_refuses_what_the_options_refuse(strategy: str) -> None:
    """The options' own rules hold whatever a strategy checks besides (`BaseStrategy.check`)."""
    nowhere = "/nonexistent/model.gguf"
    with pytest.raises(UsageError, match=r"^--min-tokens \(64\) is larger than --max-tokens"):
        api.ask(QUESTION, strategy, model=nowhere, min_tokens=64, max_tokens=32)
    with pytest.raises(UsageError, match=r"^--keep-percent must be in \(0, 100\], not 0$"):
        api.ask(QUESTION, strategy, model=nowhere, keep_percent=0)


def test_engine_flags_need_no_session_of_their_own(session: object) -> None:
    with pytest.raises(UsageError, match="'threads' sets how a model loads"):
        api.ask(QUESTION, session=session, threads=1)


def test_log_keeps_the_run_in_the_history(session: object) -> None:
    from reasoncli.history import list_runs

    result = api.ask(QUESTION, "vote", session=session, n=1, max_tokens=4, log=True)
    [run] = list_runs()
    assert (run.source, run.strategy, run.question) == ("api", "vote", QUESTION)
    assert run.generated_tokens == result.generated_tokens


def test_think_forces_the_answer_with_its_answer_text(session: object) -> None:
    """--answer-text, an option added with one declaration (reasoncli/options/strategy.py)."""
    result = api.ask(
        QUESTION, "think", session=session, max_tokens=2, answer_tokens=2, answer_text="So:", t=0.0
    )
    assert result.details["forced_answer"]
    assert "\n\nSo:" in result.branches[0].text and "Final Answer:" not in result.branches[0].text
