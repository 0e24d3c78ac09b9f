"""What training reports while it runs: per-step statistics, sent to a reporter.

Training code never prints; the CLI passes a reporter that draws a Rich view on a terminal
(or nothing), and the same statistics go to the reward log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = ["SilentReporter", "StepStats", "TrainReporter"]


@dataclass(frozen=True)
class StepStats:
    """One optimizer step: the mean over its completions, as TRL logged them."""

    step: int
    total_steps: int
    reward: float
    reward_std: float
    accuracy: float
    format: float
    stop: float
    completion_tokens: float
    clipped_ratio: float
    step_s: float
    loss: float | None = None
    kl: float | None = None
    entropy: float | None = None
    learning_rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class TrainReporter(Protocol):
    def status(self, message: str) -> None:
        """A phase starts (loading, exporting...) or something needs the user's attention."""

    def started(self, start_step: int, total_steps: int) -> None:
        """Training begins at `start_step` (non-zero on resume)."""

    def step(self, stats: StepStats) -> None: ...

    def finished(self) -> None:
        """Training stopped (done, or interrupted); no more steps will come."""


class SilentReporter:
    def status(self, message: str) -> None:
        pass

    def started(self, start_step: int, total_steps: int) -> None:
        pass

    def step(self, stats: StepStats) -> None:
        pass

    def finished(self) -> None:
        pass
