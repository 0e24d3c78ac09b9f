"""Which prompt prefixes the server's prompt sequences still hold, so a run can skip them.

Every request to `reason serve` starts with the same chat-template header and system prompt
(45 of the 69 tokens of `benchmarks/serve_load.py`'s prompt), and a repeated question shares
all of it; yet each run prefilled its whole prompt, about half the engine's work at 16 tokens
a branch (benchmarks/results/serve-throughput-investigation.txt). llama-server has the same
cache (`cache_prompt`), on by default.

The KV stays where it already is: in the runs' prompt sequences. Once a run's prompt is
decoded its sequence is only read (branches copy it), and a closing run now leaves it as it is
instead of clearing it; this table remembers which tokens each one holds. So the cache takes no
sequence and no KV memory of its own and never competes with branch slots: it holds at most one
prefix a prompt sequence (`--max-requests` of them), and an entry is evicted exactly when its
sequence goes to a new run, which takes the free one it costs least to overwrite (`choose`).
Nothing else touches a prompt sequence: branches, forks and compaction live on other ids, and
the engine never shifts a context.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A prefix held by another prompt sequence is reused by copying that sequence's whole KV stream
# (all llama.cpp allows across per-sequence streams), n_ctx cells whatever the prefix's length:
# for a few tokens, decoding them is as cheap.
MIN_COPY_TOKENS = 4


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Reuse:
    """How to start a prompt sequence: copy `source`'s KV (None: keep its own), keep `tokens`."""

    source: int | None
    tokens: int


@dataclass
class PrefixStats:
    """Counters for /health and the benchmarks."""

    prompts: int = 0  # prompts prefilled through the cache
    hits: int = 0  # of them, those that reused at least one token
    tokens_reused: int = 0  # prompt tokens whose KV was kept or copied, not decoded
    tokens_decoded: int = 0  # prompt tokens decoded


class PrefixTable:
    """The tokens whose KV each prompt sequence holds (positions 0..n-1), and when it was used."""

    def __init__(self, seqs: Iterable[int]) -> None:
        self._held: dict[int, list[int]] = {s: [] for s in seqs}
        self._used: dict[int, int] = dict.fromkeys(self._held, 0)
        self._clock = 0
        self.stats = PrefixStats()

    def held(self, seq: int) -> list[int]:
        return list(self._held[seq])

    def choose(self, free: Sequence[int], tokens: Sequence[int]) -> int:
        """The free prompt sequence a run of `tokens` should overwrite: the one that loses the
        fewest cached tokens (an empty one, or one holding a prefix of `tokens`), then the one
        holding the longest prefix of them (nothing to copy), then the least recently used."""

        def rank(seq: int) -> tuple[int, int, int]:
            held = self._held[seq]
            kept = common_prefix(held, tokens)
            return (kept - len(held), kept, -self._used[seq])

        return max(free, key=rank)

    def plan(self, seq: int, tokens: Sequence[int]) -> Reuse:
        """Where `seq`'s prompt of `tokens` (the part to prefill) gets its longest cached prefix.

        Any prompt sequence may be the source, in use or not: a run's prompt KV does not change
        until another run takes its sequence, which happens under the same lock as this."""
        own = common_prefix(self._held[seq], tokens)
        best, n = max(
            ((s, common_prefix(held, tokens)) for s, held in self._held.items() if s != seq),
            key=lambda item: item[1],
            default=(None, 0),
        )
        if best is not None and n > own and n >= MIN_COPY_TOKENS:
            return Reuse(best, n)
        return Reuse(None, own)

    def forget(self, seq: int) -> None:
        """`seq`'s KV is about to change: it holds nothing reusable until `record`."""
        self._held[seq] = []

    def record(self, seq: int, tokens: Sequence[int], reused: int) -> None:
        """`seq` now holds the KV of `tokens`, of which `reused` were not decoded."""
        self._held[seq] = list(tokens)
        self._clock += 1
        self._used[seq] = self._clock
        stats = self.stats
        stats.prompts += 1
        stats.hits += reused > 0
        stats.tokens_reused += reused
        stats.tokens_decoded += len(tokens) - reused
