"""Verifiers score candidate solutions (whole or partial) for best-of-n and search strategies.

A verifier maps (question, candidates) to one score per candidate, higher is better, in [0, 1]
where possible so scores from different verifiers read the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reasoncli.confidence import token_confidence
from reasoncli.engine.branches import TokenLogprobs


@dataclass(frozen=True)
class Candidate:
    """A solution or partial solution to score; logprobs are present when the engine kept them."""

    text: str
    logprobs: Sequence[TokenLogprobs] = field(default_factory=tuple)


class Verifier(Protocol):
    name: str
    needs_logprobs: bool

    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]: ...

    def close(self) -> None: ...


class ConfidenceVerifier:
    """No extra compute: the candidate's mean token confidence (DeepConf), squashed to (0, 1)."""

    name = "confidence"
    needs_logprobs = True

    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        return [self._one(c) for c in candidates]

    @staticmethod
    def _one(candidate: Candidate) -> float:
        confs = [token_confidence(lp.top_logprobs) for lp in candidate.logprobs]
        confs = [c for c in confs if not math.isnan(c)]
        if not confs:
            return 0.0
        mean = sum(confs) / len(confs)
        return 1.0 - math.exp(-mean)

    def close(self) -> None:
        pass
