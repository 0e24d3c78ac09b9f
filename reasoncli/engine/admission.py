"""Who may decode on the server's shared context, and when: a prompt sequence, then branch slots.

A run first takes one of the prompt sequences (one a run in flight, `--max-requests`) and has its
prompt fed into the decode rounds; only then does it wait for its branch slots (`--max-branches`
in all), first come first served. A run queued behind busy slots therefore has its prompt in
already when slots come free, and its branches decode in the very next round, as a freed
llama-server slot takes its next request: taking both at once left the freed slots idle for the
rounds the next prompt took. The queue is FIFO, so a large run is not passed over forever and
the waiting time of the runs that queue is their order, not a race between woken threads.

A run may open a second engine while its first still holds slots (`auto` runs `revise` or
another strategy after its pilot). Such a nested engine must not wait behind runs that cannot
start until the first engine closes: a run that holds slots goes to the front of the queue, and
one prompt sequence beyond `--max-requests` is kept for these engines, since queued runs hold
the others. Runs are told apart by their `owner` (the server's per-request session).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reasoncli.engine.prefix_cache import PrefixTable
from reasoncli.errors import ResourceError, UsageError

POLL_S = 0.1  # how often a waiting run looks at its cancel flag (it emits no events meanwhile)


class PoolBusy(ResourceError):
    """No room for a run: the queue is full, or slots did not come free in time (503/429)."""

    def __init__(self, message: str, *, queue_full: bool, retry_after_s: int) -> None:
        super().__init__(message)
        self.queue_full = queue_full
        self.retry_after_s = retry_after_s


class WaitCancelled(ResourceError):
    """A run was cancelled while it waited for a sequence or its prompt."""


@dataclass
class _Ticket:
    """A run in the queue for branch slots; `on_grant` runs the moment it gets them."""

    branches: int
    on_grant: Callable[[], None]
    owner: int | None  # id() of the run's owner
    granted: bool = False


class Admission:
    """The prompt sequences and branch slots of a shared context, handed out to runs.

    A run waits at most `timeout_s` in all (from `deadline`), and at most `max_waiting` runs
    wait at once. A waiting run emits no events, so its `cancelled` flag is polled: a request
    cancelled in the queue leaves it at once instead of when slots come free."""

    def __init__(
        self,
        max_branches: int,
        prompt_seqs: Sequence[int],
        *,
        max_runs: int,
        max_waiting: int,
        timeout_s: float,
        prefixes: PrefixTable | None,
    ) -> None:
        """`prompt_seqs`: more than `max_runs` of them; the rest are for nested engines."""
        self.max_branches = max_branches
        self.max_runs = max_runs
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self.prefixes = prefixes
        self._prompt_free = list(prompt_seqs)
        self._starts = 0  # prompt sequences held by runs' first engines (at most max_runs)
        self._holding: Counter[int] = Counter()  # owner -> its engines that hold branch slots
        self._reserved = 0  # branch slots promised to runs in flight
        self._queue: deque[_Ticket] = deque()  # runs waiting for branch slots, in arrival order
        self._prompt_waiters = 0
        self._cond = threading.Condition()

    @property
    def free_branches(self) -> int:
        return self.max_branches - self._reserved

    @property
    def queued(self) -> int:
        """Runs whose prompt is in and that wait for branch slots."""
        return len(self._queue)

    def deadline(self) -> float:
        return time.monotonic() + self.timeout_s

    def holds(self, owner: object | None) -> bool:
        """Whether `owner`'s run has an engine that holds branch slots."""
        key = _key(owner)
        return key is not None and self._holding[key] > 0

    def take_prompt(
        self,
        branches: int,
        deadline: float,
        cancelled: threading.Event | None = None,
        prompt: Sequence[int] = (),
        owner: object | None = None,
    ) -> tuple[int, bool]:
        """A prompt sequence for an engine that will want `branches` slots (with the prompt
        cache, the free one that keeps most of `prompt`), and whether it is a nested one."""
        if branches > self.max_branches:
            raise UsageError(
                f"the run needs {branches} branches at once; this server decodes at most "
                f"{self.max_branches} (reason serve --max-branches)"
            )
        with self._cond:
            nested = self.holds(owner)

            def free() -> bool:
                return bool(self._prompt_free) and (nested or self._starts < self.max_runs)

            can_start = free() and not self._queue and self._fits(branches)
            waiting = self._prompt_waiters + len(self._queue)
            if not (can_start or nested) and waiting >= self.max_waiting:
                raise PoolBusy(
                    f"{waiting} requests are already waiting for branch slots",
                    queue_full=True,
                    retry_after_s=5,
                )
            self._prompt_waiters += 1
            try:
                self._wait(free, branches, deadline, cancelled)
            finally:
                self._prompt_waiters -= 1
            seq = self._prompt_free[-1]
            if self.prefixes is not None and prompt:
                seq = self.prefixes.choose(self._prompt_free, prompt)
            self._prompt_free.remove(seq)
            self._starts += not nested
            return seq, nested

    def reserve(
        self,
        branches: int,
        deadline: float,
        cancelled: threading.Event | None = None,
        on_grant: Callable[[], None] = lambda: None,
        owner: object | None = None,
    ) -> None:
        """`branches` slots for a run, once every run queued before it has its own (a run that
        holds slots already goes first: it is finishing what it started).

        Slots are granted by whoever frees them (`give_back`), in the same breath, and
        `on_grant` runs then: the decode round about to start knows the run is coming before
        its thread has even woken up (pool.py waits for it)."""
        ticket = _Ticket(branches, on_grant, _key(owner))
        with self._cond:
            if self.holds(owner):
                self._queue.appendleft(ticket)
            else:
                self._queue.append(ticket)
            self._grant()
            try:
                self._wait(lambda: ticket.granted, branches, deadline, cancelled)
            except BaseException:
                if ticket.granted:  # granted as it gave up: hand the slots on
                    self._release(ticket.owner, branches)
                else:
                    self._queue.remove(ticket)
                self._grant()
                raise

    def give_back(
        self, prompt_seq: int, reserved: int, *, nested: bool, owner: object | None
    ) -> None:
        """A closing engine's prompt sequence and its reservation (0: it had none)."""
        with self._cond:
            self._prompt_free.append(prompt_seq)
            self._starts -= not nested
            if reserved:
                self._release(_key(owner), reserved)
            self._grant()
            self._cond.notify_all()

    def _release(self, owner: int | None, branches: int) -> None:
        self._reserved -= branches
        if owner is not None:
            self._holding[owner] -= 1
            if self._holding[owner] <= 0:
                del self._holding[owner]

    def _grant(self) -> None:
        """Slots to the runs at the head of the queue, as long as they fit (holding `_cond`)."""
        while self._queue and self._fits(self._queue[0].branches):
            ticket = self._queue.popleft()
            self._reserved += ticket.branches
            if ticket.owner is not None:
                self._holding[ticket.owner] += 1
            ticket.granted = True
            ticket.on_grant()
            self._cond.notify_all()

    def _fits(self, branches: int) -> bool:
        return self.max_branches - self._reserved >= branches

    def _wait(
        self,
        ready: Callable[[], bool],
        branches: int,
        deadline: float,
        cancelled: threading.Event | None,
    ) -> None:
        """Wait, holding the condition, until `ready()`; cancelled and timed-out runs raise."""
        while not ready():
            if cancelled is not None and cancelled.is_set():
                raise WaitCancelled("the request was cancelled while it waited for slots")
            left = deadline - time.monotonic()
            if left <= 0:
                raise PoolBusy(
                    f"no {branches} branch slots came free in {self.timeout_s:g} s",
                    queue_full=False,
                    retry_after_s=max(1, int(self.timeout_s // 4)),
                )
            self._cond.wait(left if cancelled is None else min(left, POLL_S))


def _key(owner: object | None) -> int | None:
    """How the queue knows a run: its owner's identity (a request session is not hashable)."""
    return None if owner is None else id(owner)
