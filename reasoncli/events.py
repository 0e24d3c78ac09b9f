"""Events that strategies emit while they run.

Strategies never print: they call an `EventSink` with these, and renderers (the Rich live view,
plain lines, JSONL) turn them into output. Each event knows its JSON form for `--jsonl`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "start"
    strategy: str
    model: str
    prompt_tokens: int
    branches: int
    max_tokens: int


@dataclass(frozen=True)
class BranchStarted(Event):
    kind: ClassVar[str] = "branch_start"
    branch: int
    parent: int | None = None
    label: str = ""


@dataclass(frozen=True)
class BranchText(Event):
    """New text from one branch (one token's worth, or forced text)."""

    kind: ClassVar[str] = "token"
    branch: int
    text: str
    tokens: int
    forced: bool = False


@dataclass(frozen=True)
class BranchFinished(Event):
    kind: ClassVar[str] = "branch_end"
    branch: int
    answer: str | None
    finish_reason: str
    tokens: int
    score: float | None = None


@dataclass(frozen=True)
class TallyGroup:
    answer: str
    count: int
    weight: float


@dataclass(frozen=True)
class VoteUpdated(Event):
    kind: ClassVar[str] = "vote"
    answer: str | None
    share: float
    groups: tuple[TallyGroup, ...] = field(default_factory=tuple)
    finished: int = 0
    total: int = 0


@dataclass(frozen=True)
class Note(Event):
    """A decision worth showing: an early stop, a forced answer, the path `auto` chose."""

    kind: ClassVar[str] = "note"
    message: str
    topic: str = "info"  # "early_stop" | "budget" | "plan" | "info"


EventSink = Callable[[Event], None]


def discard(_: Event) -> None:
    """A sink for callers that only want the result."""
