"""The one result type every strategy returns, with its JSON form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BranchResult:
    id: int
    text: str
    answer: str | None
    tokens: int
    finish_reason: str
    parent: int | None = None
    thinking: str | None = None  # the <think> trace, when the model writes one
    thinking_tokens: int = 0  # the trace's tokens, where counted (reason serve's usage)
    forced_tokens: int = 0
    confidence: float | None = None
    score: float | None = None
    reward: dict[str, float] | None = None
    label: str = ""
    error: str | None = None  # why a remote branch failed


@dataclass
class VoteGroup:
    answer: str
    count: int
    weight: float
    members: list[int]


@dataclass
class Timings:
    load_s: float = 0.0
    prompt_s: float = 0.0
    generate_s: float = 0.0
    total_s: float = 0.0
    # Prompt tokens this process fed to llama_decode, and decode calls, summed over engines:
    # shows the prompt is decoded once, not once per branch. 0 for remote engines (the server
    # decodes) and for runs read back from the history, which does not store them.
    prompt_tokens_decoded: int = 0
    decode_calls: int = 0


@dataclass
class Result:
    question: str
    strategy: str
    model: str
    answer: str | None
    share: float
    votes: list[VoteGroup] = field(default_factory=list)
    branches: list[BranchResult] = field(default_factory=list)
    prompt_tokens: int = 0
    generated_tokens: int = 0
    timings: Timings = field(default_factory=Timings)
    interrupted: bool = False
    stop_reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)  # name, gpu_layers, threads

    @property
    def tokens_per_s(self) -> float:
        t = self.timings.generate_s
        return self.generated_tokens / t if t > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_per_s"] = round(self.tokens_per_s, 2)
        return data
