"""The server's shared context on real llama.cpp: runs on different threads decode in the same
batches and get the tokens they would have got alone; the sequence pool waits, then refuses."""

from __future__ import annotations

import threading
import time

import pytest
from test_engine import GREEDY, PROMPT, make_engine, run_all

from reasoncli.engine.admission import PoolBusy, WaitCancelled
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.pool import SharedContext, TokenBudget
from reasoncli.engine.sampling import Sampling
from reasoncli.errors import UsageError

QUESTIONS = [PROMPT, PROMPT.replace("17 times 23", "the capital of France")]


def pool(
    model: LlamaModel,
    threads: int,
    *,
    max_branches: int,
    ctx: int = 256,
    max_waiting: int = 16,
    acquire_timeout_s: float = 60.0,
) -> SharedContext:
    """A shared context for two runs at once."""
    return SharedContext(
        model,
        max_branches=max_branches,
        max_runs=2,
        ctx_per_branch=ctx,
        n_threads=threads,
        max_waiting=max_waiting,
        acquire_timeout_s=acquire_timeout_s,
    )


def alone(model: LlamaModel, prompt: str, threads: int) -> list[list[int]]:
    with make_engine(model, 2, 24, threads) as engine:
        engine.set_prompt(model.tokenize(prompt))
        bs = [engine.add_branch(s, 24) for s in (GREEDY, Sampling(temperature=1.0, seed=7))]
        run_all(engine)
        return [b.tokens for b in bs]


def test_concurrent_runs_share_batches_and_match_running_alone(
    tiny_model: LlamaModel, threads: int
) -> None:
    expected = [alone(tiny_model, q, threads) for q in QUESTIONS]
    shared = pool(tiny_model, threads, max_branches=4)
    got: dict[int, list[list[int]]] = {}
    decoded: dict[int, int] = {}
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        tokens = tiny_model.tokenize(QUESTIONS[i])
        with shared.open_engine(tokens, max_branches=2, max_tokens=24) as engine:
            bs = [engine.add_branch(s, 24) for s in (GREEDY, Sampling(temperature=1.0, seed=7))]
            barrier.wait()
            run_all(engine)
            got[i] = [b.tokens for b in bs]
            decoded[i] = engine.prompt_tokens_decoded + engine.prompt_tokens_cached
            assert decoded[i] == len(tokens)  # the prompt once, the branches copy it

    workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    try:
        assert got == dict(enumerate(expected))
        assert shared.scheduler.shared_rounds > 0  # both runs' branches in one llama_decode
        assert shared.scheduler.rounds < 2 * 24  # fewer rounds than running one after the other
        assert shared.free_branches == 4  # closing an engine gives its sequences back
    finally:
        shared.close()


def test_the_pool_refuses_what_it_can_never_hold_and_times_out_when_full(
    tiny_model: LlamaModel, threads: int
) -> None:
    shared = pool(
        tiny_model, threads, max_branches=2, ctx=128, max_waiting=1, acquire_timeout_s=0.2
    )
    tokens = tiny_model.tokenize(PROMPT)
    try:
        with pytest.raises(UsageError, match="at most 2"):
            shared.open_engine(tokens, max_branches=3, max_tokens=8)
        with pytest.raises(UsageError, match="context cells"):
            shared.open_engine(tokens, max_branches=1, max_tokens=500)
        with shared.open_engine(tokens, max_branches=2, max_tokens=8):
            with pytest.raises(PoolBusy) as busy:
                shared.open_engine(tokens, max_branches=1, max_tokens=8)
            assert not busy.value.queue_full and busy.value.retry_after_s >= 1
        with shared.open_engine(tokens, max_branches=1, max_tokens=8):  # free again
            assert shared.free_branches == 1
    finally:
        shared.close()


def test_a_token_budget_ends_a_requests_branches_with_length(
    tiny_model: LlamaModel, threads: int
) -> None:
    shared = pool(tiny_model, threads, max_branches=4)
    budget = TokenBudget(10)
    try:
        tokens = tiny_model.tokenize(PROMPT)
        no_eos = Sampling(temperature=1.0, seed=3)
        with shared.open_engine(tokens, max_branches=2, max_tokens=64, budget=budget) as eng:
            bs = [eng.add_branch(no_eos, 64) for _ in range(2)]
            run_all(eng)
        assert 10 <= budget.spent <= 10 + 2  # at most one token a live branch past the ceiling
        assert all(b.finish_reason == "length" for b in bs if b.n_tokens < 64)
        # A second engine of the same request: the ceiling is spent, so one token and done.
        with shared.open_engine(tokens, max_branches=2, max_tokens=64, budget=budget) as eng:
            late = [eng.add_branch(no_eos, 64) for _ in range(2)]
            run_all(eng)
        assert [(b.n_tokens, b.finish_reason) for b in late] in (
            [(1, "length")] * 2,
            [(0, "eos"), (1, "length")],
            [(1, "length"), (0, "eos")],
        )
        assert shared.free_branches == 4
    finally:
        shared.close()


def test_a_run_cancelled_while_it_waits_for_slots_leaves_the_queue_at_once(
    tiny_model: LlamaModel, threads: int
) -> None:
    shared = pool(tiny_model, threads, max_branches=2, acquire_timeout_s=60)
    tokens = tiny_model.tokenize(PROMPT)
    cancelled = threading.Event()
    outcome: list[BaseException] = []

    def queued() -> None:
        try:
            shared.open_engine(tokens, max_branches=2, max_tokens=8, cancelled=cancelled).close()
        except BaseException as exc:  # the test reads what it raised
            outcome.append(exc)

    try:
        with shared.open_engine(tokens, max_branches=2, max_tokens=8):  # holds every slot
            waiter = threading.Thread(target=queued)
            waiter.start()
            time.sleep(0.3)
            assert waiter.is_alive() and not outcome  # waiting for slots
            cancelled.set()
            t0 = time.monotonic()
            waiter.join(5)
            assert time.monotonic() - t0 < 1.0  # not at the 60 s timeout, nor when slots free
        assert len(outcome) == 1 and isinstance(outcome[0], WaitCancelled)
        assert shared.free_branches == 2
    finally:
        shared.close()


def test_a_queued_run_has_its_prompt_in_before_slots_free_and_runs_start_in_arrival_order(
    tiny_model: LlamaModel, threads: int
) -> None:
    """The second run's prompt is decoded while the first holds every branch slot, so its
    branches can start in the round after the slots free; queued runs get slots in order."""
    shared = SharedContext(
        tiny_model, max_branches=2, max_runs=3, ctx_per_branch=256, n_threads=threads
    )
    admitted: list[str] = []
    decoded: dict[str, int] = {}

    def queued(name: str, question: str, branches: int) -> None:
        tokens = tiny_model.tokenize(question)
        with shared.open_engine(tokens, max_branches=branches, max_tokens=8) as engine:
            admitted.append(name)
            decoded[name] = engine.prompt_tokens_decoded + engine.prompt_tokens_cached
            engine.add_branch(GREEDY, 4)
            run_all(engine)

    try:
        first = shared.open_engine(tiny_model.tokenize(PROMPT), max_branches=2, max_tokens=8)
        rows = shared.context.rows_decoded
        second = threading.Thread(target=queued, args=("second", QUESTIONS[1], 2))
        second.start()
        deadline = time.monotonic() + 10
        while shared.admission.queued < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        third = threading.Thread(target=queued, args=("third", PROMPT + " Be brief.", 1))
        third.start()
        while shared.admission.queued < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shared.admission.queued == 2 and not admitted  # both wait for branch slots
        # ... with their prompts in: the second's prompt differs from the first in its question.
        assert shared.context.rows_decoded > rows
        first.close()
        second.join(30)
        third.join(30)
        assert admitted == ["second", "third"]  # the one-slot run did not jump the queue
        assert decoded["second"] == len(tiny_model.tokenize(QUESTIONS[1]))
        assert shared.free_branches == 2
    finally:
        shared.close()


def test_a_new_runs_first_step_samples_without_a_round(
    tiny_model: LlamaModel, threads: int
) -> None:
    """The first tokens come from the prompt's kept logits: no decode round for them, so the
    run's first rows can join the next round of the others."""
    shared = pool(tiny_model, threads, max_branches=4)
    tokens = tiny_model.tokenize(PROMPT)
    try:
        with shared.open_engine(tokens, max_branches=2, max_tokens=8) as engine:
            bs = [engine.add_branch(s, 8) for s in (GREEDY, Sampling(temperature=1.0, seed=7))]
            rounds, rows = shared.scheduler.rounds, shared.context.rows_decoded
            events = engine.step()
            assert [e.branch for e in events] == bs
            assert all(b.n_tokens == 1 or b.finish_reason == "eos" for b in bs)
            assert (shared.scheduler.rounds, shared.context.rows_decoded) == (rounds, rows)
            live = len(engine.live)
            engine.step()
            assert shared.scheduler.rounds == rounds + (live > 0)
            assert shared.context.rows_decoded == rows + live
    finally:
        shared.close()


def test_a_runs_nested_engine_does_not_wait_behind_runs_its_first_engine_holds_up(
    tiny_model: LlamaModel, threads: int
) -> None:
    """`auto` opens a second engine while its pilot's still holds slots. A run queued for more
    slots than are free must not keep that engine waiting (it would wait for the first engine
    to close, which waits for the second): the nested engine goes first, and gets the prompt
    sequence kept for nested engines although queued runs hold the others."""
    shared = SharedContext(
        tiny_model,
        max_branches=3,
        max_runs=2,
        ctx_per_branch=256,
        n_threads=threads,
        acquire_timeout_s=30,
    )
    tokens = tiny_model.tokenize(PROMPT)
    run, other = object(), object()
    outcome: list[str] = []

    def queued() -> None:  # wants 2 slots while only 1 is free
        with shared.open_engine(tokens, max_branches=2, max_tokens=8, owner=other):
            outcome.append("other")

    try:
        first = shared.open_engine(tokens, max_branches=2, max_tokens=8, owner=run)
        waiter = threading.Thread(target=queued)
        waiter.start()
        deadline = time.monotonic() + 10
        while shared.admission.queued < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shared.admission.queued == 1  # the other run holds a prompt sequence and waits
        t0 = time.monotonic()
        with shared.open_engine(tokens, max_branches=1, max_tokens=8, owner=run) as nested:
            assert nested.nested
            nested.add_branch(GREEDY, 4)
            run_all(nested)
            outcome.append("nested")
        assert time.monotonic() - t0 < 5  # not the 30 s queue timeout
        first.close()
        waiter.join(30)
        assert outcome == ["nested", "other"]
        assert shared.free_branches == 3
    finally:
        shared.close()
