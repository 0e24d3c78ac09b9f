"""Which llama.cpp sequence ids branches hold, and how to keep the live ones consecutive.

With one KV stream per sequence (`kv_unified=False`), llama.cpp splits a batch into micro-batches
whose sequence ids are consecutive and increasing (`split_equal(..., sequential=true)` in
llama-batch.cpp), and every micro-batch is a full pass over the weights. Sixteen branches on
sequences 1..16 decode in one pass; the same sixteen on every other id, or in descending order,
take up to sixteen passes, measured at 1.8x the time per step on the embedded model. Branches
that finish early leave such gaps, and so do the requests of a server sharing one context.

So the engine hands out the lowest free id, puts rows in ascending id order, and before a step
moves live branches whose ids leave gaps into a consecutive window (`plan_moves`). A move is a
full-stream KV copy, which llama.cpp performs at the start of the next decode: a memory copy of
the branch's stream, far cheaper than the extra passes over the weights it saves on every later
step.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence


def consecutive(ids: Sequence[int]) -> bool:
    """Whether `ids` (distinct, any order) decode as one llama.cpp micro-batch once sorted."""
    return len(ids) < 2 or max(ids) - min(ids) == len(ids) - 1


class SeqSlots:
    """The free sequence ids of a context (or of a server's shared branch pool)."""

    def __init__(self, ids: Iterable[int]) -> None:
        self.ids = sorted(set(ids))  # every id branches may use
        self._free = list(self.ids)  # kept sorted

    def __len__(self) -> int:
        return len(self._free)

    @property
    def free(self) -> list[int]:
        return list(self._free)

    def take(self, seq: int | None = None) -> int:
        """The lowest free id, or `seq` itself; raises `LookupError` when none is free."""
        if not self._free:
            raise LookupError("no free sequence")
        if seq is None:
            return self._free.pop(0)
        at = bisect.bisect_left(self._free, seq)
        if at == len(self._free) or self._free[at] != seq:
            raise LookupError(f"sequence {seq} is not free")
        return self._free.pop(at)

    def give(self, seq: int) -> None:
        bisect.insort(self._free, seq)

    def plan_moves(self, live: Sequence[int], idle: Sequence[int]) -> list[tuple[int, int]]:
        """`(from, to)` moves, in the order to run them, that put `live` on consecutive ids.

        `idle` are ids held by branches that will not decode now (finished but kept for a fork
        or a forced continuation); they may be moved out of the way, never dropped. Ids that are
        neither live, idle nor free (another run's, on a shared context) are never touched. The
        window chosen needs the fewest moves; ties go to the lowest ids. No moves when `live`
        is already consecutive or when no window can be reached.
        """
        if consecutive(live):
            return []
        k = len(live)
        ordered = sorted(live)
        live_set, idle_set, free_set = set(live), set(idle), set(self._free)
        usable = live_set | idle_set | free_set
        best: tuple[int, int] | None = None  # (moves, window start)
        for start in self.ids:
            window = range(start, start + k)
            if any(s not in usable for s in window):
                continue
            blockers = sum(1 for s in window if s in idle_set)
            if blockers and not free_set:
                continue
            cost = sum(1 for s in live if s not in window) + blockers
            if best is None or cost < best[0]:
                best = (cost, start)
        if best is None:
            return []
        return _moves_into(range(best[1], best[1] + k), ordered, idle_set, free_set)


def _moves_into(
    window: range, live: list[int], idle: set[int], free: set[int]
) -> list[tuple[int, int]]:
    """Fill `window` with the live ids: first into its free ids (each move frees an id outside),
    then, for each idle id in it, move that one out to a free id and a live one into its place.
    With one free id anywhere this never runs out of room."""
    movers = iter(s for s in live if s not in window)
    spare = sorted(free.difference(window))
    moves: list[tuple[int, int]] = []
    for hole in (s for s in window if s in free):
        src = next(movers)
        moves.append((src, hole))
        bisect.insort(spare, src)
    for blocker in (s for s in window if s in idle):
        moves.append((blocker, spare.pop(0)))
        src = next(movers)
        moves.append((src, blocker))
        bisect.insort(spare, src)
    return moves
