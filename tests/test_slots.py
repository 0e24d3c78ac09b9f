"""Sequence-id bookkeeping: the moves that keep live branches on consecutive ids (slots.py)."""

from __future__ import annotations

import pytest

from reasoncli.engine.slots import SeqSlots


def slots_with(ids: range, held: list[int]) -> SeqSlots:
    slots = SeqSlots(ids)
    for s in held:
        slots.take(s)
    return slots


def apply(slots: SeqSlots, live: list[int], idle: list[int], moves: list[tuple[int, int]]):
    """Run the moves the way the engine does; returns the live and idle ids afterwards."""
    where = {s: ("live", s) for s in live} | {s: ("idle", s) for s in idle}
    for src, dst in moves:
        assert dst in slots.free, f"move {src}->{dst} onto a sequence in use"
        slots.take(dst)
        where[dst] = where.pop(src)
        slots.give(src)
    live_after = sorted(s for s, (kind, _) in where.items() if kind == "live")
    idle_after = sorted(s for s, (kind, _) in where.items() if kind == "idle")
    return live_after, idle_after


def test_takes_the_lowest_free_id_and_gives_back_in_order() -> None:
    slots = SeqSlots(range(1, 6))
    assert [slots.take() for _ in range(3)] == [1, 2, 3]
    slots.give(2)
    assert slots.take() == 2
    with pytest.raises(LookupError):
        slots.take(3)


def test_consecutive_live_ids_need_no_moves() -> None:
    slots = slots_with(range(1, 10), [3, 4, 5, 1])
    assert slots.plan_moves([3, 4, 5], idle=[1]) == []
    assert slots.plan_moves([5, 3, 4], idle=[1]) == []  # order does not matter


def test_a_gap_left_by_a_released_branch_is_closed_with_one_move() -> None:
    slots = slots_with(range(1, 10), [1, 3, 4])
    moves = slots.plan_moves([1, 3, 4], idle=[])
    assert len(moves) == 1
    live, _ = apply(slots, [1, 3, 4], [], moves)
    assert live == [live[0], live[0] + 1, live[0] + 2]


def test_finished_branches_in_the_way_are_moved_out_never_dropped() -> None:
    # 8 branches on 1..8 with a spare 9; branches on 2, 4 and 6 finished but are kept.
    slots = slots_with(range(1, 10), list(range(1, 9)))
    live, idle = [1, 3, 5, 7, 8], [2, 4, 6]
    moves = slots.plan_moves(live, idle)
    live_after, idle_after = apply(slots, live, idle, moves)
    assert live_after[-1] - live_after[0] == len(live) - 1
    assert len(idle_after) == 3 and not set(idle_after) & set(live_after)
    assert len(moves) <= 2 * len(idle)


def test_without_any_free_id_nothing_can_be_swapped() -> None:
    slots = slots_with(range(1, 5), [1, 2, 3, 4])
    assert slots.plan_moves([1, 3, 4], idle=[2]) == []


def test_ids_of_other_runs_are_never_touched() -> None:
    # A shared pool: 10..13 belong to another run that is not in this step.
    slots = slots_with(range(1, 16), [1, 2, 5, 10, 11, 12, 13])
    live, idle = [1, 5], [2]
    moves = slots.plan_moves(live, idle)
    touched = {s for m in moves for s in m}
    assert not touched & {10, 11, 12, 13}
    live_after, _ = apply(slots, live, idle, moves)
    assert live_after[1] == live_after[0] + 1
