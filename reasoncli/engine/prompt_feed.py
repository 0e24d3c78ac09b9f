"""A prompt's tokens still to decode, handed out in chunks that fit a decode batch.

A standalone engine decodes them at once, in whole n_batch chunks. On the server (pool.py) a new
run's prompt is fed into the shared decode rounds instead, in the rows that the running branches
leave free, so that admitting a run does not hold every other run's next token for a whole
prefill: llama-server mixes prompt and generation tokens in one batch the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# (token, position, sequence, wants logits): a row of a llama.cpp batch (DecodeContext.fill_batch)
Row = tuple[int, int, int, bool]


class PromptFeed:
    """The undecoded rest of one prompt sequence's tokens, and where the next one goes."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.fed = 0  # tokens handed out over the engine's life (its prompt_tokens_decoded)
        self._tokens: list[int] = []
        self._next = 0

    def start(self, body: Sequence[int], start: int) -> None:
        """Feed `body[start:]`: the sequence's KV already holds `body[:start]`."""
        self._tokens = list(body[start:])
        self._next = start

    def __len__(self) -> int:
        return len(self._tokens)

    def take(self, room: int) -> list[Row]:
        """Rows for up to `room` next tokens; only the prompt's last token wants logits (every
        branch samples its first token from them: `BranchEngine.keep_prompt_logits`)."""
        chunk = self._tokens[: max(room, 0)]
        del self._tokens[: len(chunk)]
        first = self._next
        self._next += len(chunk)
        self.fed += len(chunk)
        last = len(chunk) - 1 if not self._tokens else -1
        return [(tok, first + i, self.seq, i == last) for i, tok in enumerate(chunk)]

    def drop(self) -> None:
        """Feed nothing more (the run failed or was cancelled mid-prompt)."""
        self._tokens = []


def fill(feeds: Iterable[PromptFeed], room: int) -> list[Row]:
    """Up to `room` rows from `feeds`, first come first served."""
    rows: list[Row] = []
    for feed in feeds:
        if len(rows) >= room:
            break
        rows += feed.take(room - len(rows))
    return rows
