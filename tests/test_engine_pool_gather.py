"""The gather rule on real llama.cpp: a round waits for the busy runs of the previous round, so
runs that take a while between steps still share every round, and a run that holds its branches
without stepping delays the others by one bounded wait, not every round."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from test_engine import GREEDY
from test_engine_pool import QUESTIONS, alone, pool

from reasoncli.engine import pool as pool_module
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.pool import PooledEngine, SharedContext
from reasoncli.engine.sampling import Sampling

MAX_TOKENS = 24
THINK_S = 0.03  # a run's work between steps: longer than GATHER_S, so the old rule split rounds


@pytest.fixture
def bound(monkeypatch: pytest.MonkeyPatch) -> float:
    """The window for a returning run, made independent of the tiny model's round time."""
    monkeypatch.setattr(pool_module, "ROUND_FRACTION", 1e9)
    monkeypatch.setattr(pool_module, "MAX_GATHER_S", 0.5)
    return 0.5


def stepping(engine: PooledEngine, pause: Callable[[int], None]) -> None:
    """Step until every branch is done, calling `pause(n)` after step n (the strategy's work)."""
    n = 0
    while engine.wants_step():
        engine.step()
        n += 1
        pause(n)


def run_concurrently(
    shared: SharedContext, model: LlamaModel, pauses: list[Callable[[int], None]]
) -> list[list[list[int]]]:
    got: dict[int, list[list[int]]] = {}
    barrier = threading.Barrier(len(pauses))

    def run(i: int) -> None:
        tokens = model.tokenize(QUESTIONS[i % len(QUESTIONS)])
        with shared.open_engine(tokens, max_branches=2, max_tokens=MAX_TOKENS) as engine:
            bs = [
                engine.add_branch(s, MAX_TOKENS)
                for s in (GREEDY, Sampling(temperature=1.0, seed=7))
            ]
            barrier.wait()
            stepping(engine, pauses[i])
            got[i] = [b.tokens for b in bs]

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(pauses))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    return [got[i] for i in range(len(pauses))]


def think(_: int) -> None:
    time.sleep(THINK_S)


def test_runs_that_think_between_steps_share_every_round(
    tiny_model: LlamaModel, threads: int, bound: float
) -> None:
    expected = [alone(tiny_model, q, threads) for q in QUESTIONS]
    shared = pool(tiny_model, threads, max_branches=4)
    try:
        got = run_concurrently(shared, tiny_model, [think, think])
        assert got == expected  # tokens unchanged by the wait
        s = shared.scheduler
        # The prefills aside (one may leave the other's out), one round per token for both runs.
        assert s.short_rounds <= 1
        assert s.rounds <= MAX_TOKENS + 3
    finally:
        shared.close()


def test_with_only_the_fixed_window_the_same_runs_split_rounds(
    tiny_model: LlamaModel, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contrast: waiting GATHER_S alone leaves a thinking run out of most rounds."""
    monkeypatch.setattr(pool_module, "ROUND_FRACTION", 0.0)
    shared = pool(tiny_model, threads, max_branches=4)
    try:
        run_concurrently(shared, tiny_model, [think, think])
        assert shared.scheduler.short_rounds > MAX_TOKENS // 2
        assert shared.scheduler.rounds > MAX_TOKENS * 3 // 2
    finally:
        shared.close()


def test_a_run_that_holds_delays_the_others_once_by_at_most_the_bound(
    tiny_model: LlamaModel, threads: int, bound: float
) -> None:
    expected = [alone(tiny_model, q, threads) for q in QUESTIONS]
    shared = pool(tiny_model, threads, max_branches=4)
    released = threading.Event()
    other_took: list[float] = []

    def hold(n: int) -> None:  # after two steps, hold live branches until the other run is done
        if n == 2:
            released.wait(60)

    def keep_stepping(n: int) -> None:
        if n == 2:
            other_took.append(time.monotonic())
        if n == MAX_TOKENS - 1:
            other_took.append(time.monotonic())
            released.set()

    try:
        got = run_concurrently(shared, tiny_model, [hold, keep_stepping])
        assert got == expected
        # 21 rounds without the holder: a wait of the bound each would take 10 s.
        assert other_took[1] - other_took[0] < 4 * bound
    finally:
        released.set()
        shared.close()
