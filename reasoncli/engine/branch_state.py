"""One branch of a run: its state, and what a decode step produced for it.

These are values shared by every engine (local, pooled and remote) and by the strategies that
read them; an engine changes a branch, a strategy only reads it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reasoncli.engine.sampling import Sampling
from reasoncli.errors import ReasonError

FAILED = "failed"  # remote branches whose requests ran out of retries
_MARKS = 64  # sampled tokens remembered for a rewind: longer than any stop string's tokens


@dataclass(frozen=True)
class TokenLogprobs:
    """The chosen token's log-probability and the top-k alternatives (raw model distribution)."""

    token: int
    logprob: float
    top_tokens: tuple[int, ...]
    top_logprobs: tuple[float, ...]


@dataclass
class Branch:
    """One continuation. Read its fields; change it only through the engine (which uses the
    methods below)."""

    id: int
    seq: int
    sampling: Sampling
    max_tokens: int
    stop: tuple[str, ...] = ()
    parent: int | None = None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[TokenLogprobs] = field(default_factory=list)
    finish_reason: str | None = None  # "eos" | "stop" | "length" | "stopped" | "failed"
    stop_hit: str | None = None  # which stop string ended it
    n_past: int = 0
    pending: list[int] = field(default_factory=list)
    # Its one pending token is the prompt's last, already decoded in the prompt sequence (whose
    # KV it copied): its first token is sampled from the prompt's logits, with no row of its own.
    from_prompt: bool = False
    forced_tokens: int = 0
    # (position, text offset) of each recent sampled token, and, after a stop string ended the
    # branch, the first of them the stop's text reaches: what `inject` rewinds the KV to.
    marks: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=_MARKS))
    rewind: tuple[int, int] | None = None
    _decoder: Any = None
    _sampler: Any = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def rows_to_decode(self) -> int:
        """How many rows its next step decodes."""
        return len(self.pending) - self.from_prompt

    def skip_prompt_token(self) -> None:
        """Its pending prompt token is in its KV already: count it there."""
        if self.from_prompt:
            self.n_past += 1
            self.pending = self.pending[1:]
            self.from_prompt = False

    @property
    def n_tokens(self) -> int:
        """Tokens this branch generated (forced text not counted)."""
        return len(self.tokens)

    def check_held(self, action: str | None = None) -> None:
        """Refuse a branch whose sequence was released (`action`: what it cannot be, "forked")."""
        if self.seq < 0:
            cannot = f" and cannot be {action}" if action else ""
            raise ReasonError(f"branch {self.id} was released{cannot}")

    def take_text(self, piece: str, position: int | None = None) -> str:
        """Append generated text and end the branch at the first stop string in it: the text is
        cut there (finish_reason "stop", `stop_hit` set). Returns what of `piece` stays.

        `position` is where the sampled token goes in the KV. A stop string that spans several
        tokens has all but its last decoded already; `rewind` then names the first token it
        reaches, so text forced after the stop ("Wait", `</think>`) follows the kept text and
        not the stop's first tokens ("</think" + "Wait" reads as a stray ">")."""
        start = max(0, len(self.text) - max((len(s) for s in self.stop), default=0))
        if position is not None:
            self.marks.append((position, len(self.text)))
        self.text += piece
        for s in self.stop:
            at = self.text.find(s, start)
            if at >= 0:
                removed = len(self.text) - at
                self.text = self.text[:at]
                self.finish_reason, self.stop_hit = "stop", s
                self.rewind = self._stop_start(at)
                return piece[: max(0, len(piece) - removed)]
        return piece

    def _stop_start(self, at: int) -> tuple[int, int] | None:
        """The mark of the token the stop string at text offset `at` begins in: the last token
        that starts at or before it, or the first of those starting at the same offset (a token
        that ends inside a character decodes to no text and shares its successor's offset)."""
        before = [m for m in self.marks if m[1] <= at]
        if not before:
            return None
        return next(m for m in before if m[1] == before[-1][1])

    def force(
        self, text: str, n_tokens: int, max_tokens: int | None, stop: Iterable[str] | None
    ) -> None:
        """Forced text ("Wait", "Final Answer:"), `n_tokens` long: the branch goes on as if it
        had written it, with a new budget and stop strings where they are given."""
        self.text += text
        self.forced_tokens += n_tokens
        self.finish_reason = None
        self.stop_hit = None
        self.rewind = None
        if max_tokens is not None:
            self.max_tokens = max_tokens
        if stop is not None:
            self.stop = tuple(stop)

    def child(
        self,
        id: int,
        seq: int,
        sampling: Sampling | None,
        max_tokens: int | None,
        stop: Iterable[str] | None,
    ) -> Branch:
        """A fork: everything produced so far, under its own id and settings (None: inherit)."""
        return Branch(
            id=id,
            seq=seq,
            sampling=sampling or self.sampling,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            stop=self.stop if stop is None else tuple(stop),
            parent=self.id,
            tokens=list(self.tokens),
            text=self.text,
            logprobs=list(self.logprobs),
            n_past=self.n_past,
            pending=list(self.pending),
            from_prompt=self.from_prompt,
            forced_tokens=self.forced_tokens,
        )


class BranchRoster:
    """The branches an engine has started, in order: the part of the engine interface the local
    and the remote engine share."""

    _branches: list[Branch]

    @property
    def branches(self) -> list[Branch]:
        return list(self._branches)

    @property
    def live(self) -> list[Branch]:
        return [b for b in self._branches if not b.done]


@dataclass(frozen=True)
class TokenEvent:
    """What one step produced for one branch."""

    branch: Branch
    token: int | None
    text: str
    finished: bool
