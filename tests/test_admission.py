"""The server's admission of runs (engine/admission.py), on its own: prompt sequences, then
branch slots first come first served, granted by the run that frees them; nested engines first."""

from __future__ import annotations

import threading
import time

import pytest

from reasoncli.engine.admission import Admission, PoolBusy, WaitCancelled


def admission(*, branches: int = 4, runs: int = 2, waiting: int = 8, timeout: float = 10.0):
    return Admission(
        branches,
        list(range(runs + 1)),  # one more than max_runs: the nested engines' own
        max_runs=runs,
        max_waiting=waiting,
        timeout_s=timeout,
        prefixes=None,
    )


def start(target, *args) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_slots_go_in_arrival_order_and_the_freeing_run_grants_them() -> None:
    a = admission(branches=4, runs=3)
    seq, nested = a.take_prompt(4, a.deadline())
    a.reserve(4, a.deadline())
    assert not nested and a.free_branches == 0
    order: list[str] = []
    granted: list[str] = []
    seqs: dict[str, int] = {}

    def run(name: str, branches: int) -> None:
        seqs[name], _ = a.take_prompt(branches, a.deadline())
        a.reserve(branches, a.deadline(), on_grant=lambda: granted.append(name))
        order.append(name)

    big = start(run, "big", 4)
    wait_until(lambda: a.queued == 1)
    small = start(run, "small", 1)
    wait_until(lambda: a.queued == 2)
    a.give_back(seq, 4, nested=False, owner=None)
    # granted inside give_back, before either waiting thread has run: the big run first, and
    # the small one, behind it, not at all (it does not fit beside it)
    assert granted == ["big"] and a.free_branches == 0
    big.join(5)
    assert order == ["big"] and a.queued == 1
    a.give_back(seqs["big"], 4, nested=False, owner=None)
    small.join(5)
    assert order == ["big", "small"]


def test_a_cancelled_or_timed_out_wait_leaves_the_queue_and_hands_on() -> None:
    a = admission(branches=2, runs=3, timeout=0.3)
    a.take_prompt(2, a.deadline())
    a.reserve(2, a.deadline())
    cancelled = threading.Event()
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            a.take_prompt(1, a.deadline(), cancelled)
            a.reserve(1, a.deadline(), cancelled)
        except BaseException as exc:  # the test reads it
            outcome.append(exc)

    t = start(waiter)
    wait_until(lambda: a.queued == 1)
    cancelled.set()
    t.join(2)
    assert isinstance(outcome[0], WaitCancelled) and a.queued == 0
    with pytest.raises(PoolBusy) as busy:  # nothing frees within the 0.3 s timeout
        a.reserve(1, a.deadline())
    assert not busy.value.queue_full and a.queued == 0


def test_a_full_queue_refuses_at_once() -> None:
    a = admission(branches=1, runs=3, waiting=1)
    seq, _ = a.take_prompt(1, a.deadline())
    a.reserve(1, a.deadline())
    t = start(lambda: (a.take_prompt(1, a.deadline()), a.reserve(1, a.deadline())))
    wait_until(lambda: a.queued == 1)
    with pytest.raises(PoolBusy) as busy:
        a.take_prompt(1, a.deadline())
    assert busy.value.queue_full and busy.value.retry_after_s > 0
    with pytest.raises(Exception, match="at most 1"):
        a.take_prompt(2, a.deadline())
    a.give_back(seq, 1, nested=False, owner=None)
    t.join(5)


def test_a_run_holding_slots_opens_a_nested_engine_ahead_of_the_queue() -> None:
    a = admission(branches=3, runs=2)
    run, other = object(), object()
    first, _ = a.take_prompt(2, a.deadline(), owner=run)
    a.reserve(2, a.deadline(), owner=run)
    t = start(lambda: (a.take_prompt(2, a.deadline(), owner=other),
                       a.reserve(2, a.deadline(), owner=other)))  # fmt: skip
    wait_until(lambda: a.queued == 1)  # the other run holds the last of max_runs' sequences
    seq, nested = a.take_prompt(1, a.deadline(), owner=run)  # the kept one
    assert nested and seq != first
    a.reserve(1, a.deadline(), owner=run)  # ahead of the other run, which waits for 2
    assert a.free_branches == 0 and a.queued == 1
    a.give_back(seq, 1, nested=True, owner=run)
    a.give_back(first, 2, nested=False, owner=run)
    t.join(5)
    assert not t.is_alive() and a.free_branches == 1
