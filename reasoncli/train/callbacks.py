"""The TrainerCallback that turns TRL's per-step logs into StepStats, and Ctrl-C into a
checkpoint: the first Ctrl-C lets the running step finish, saves, and stops; a second one
aborts at once.

Imports transformers, so it is only imported once the train extra is known to be there.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from transformers import TrainerCallback

from reasoncli.train.progress import StepStats, TrainReporter
from reasoncli.train.runlog import RewardLog

__all__ = ["GracefulInterrupt", "StepCallback"]


class GracefulInterrupt:
    """A flag raised by the first SIGINT while installed; the second SIGINT is a real one."""

    def __init__(self, reporter: TrainReporter) -> None:
        self.reporter = reporter
        self.requested = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.reporter.status("Ctrl-C: saving a checkpoint after this step (Ctrl-C again aborts)")

    def stop_after_step(self, control: Any) -> None:
        """Once Ctrl-C was pressed, have the Trainer save a checkpoint and stop."""
        if self.requested:
            control.should_save = True
            control.should_training_stop = True

    @contextmanager
    def installed(self) -> Iterator[GracefulInterrupt]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach the main thread only: nothing to install
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _num(logs: dict[str, Any], key: str) -> float | None:
    value = logs.get(key)
    return float(value) if isinstance(value, int | float) else None


class StepCallback(TrainerCallback):  # type: ignore[misc]
    """Step timing, the reward log, the reporter, and stopping on request."""

    def __init__(self, reporter: TrainReporter, log: RewardLog, interrupt: GracefulInterrupt):
        self.reporter = reporter
        self.log = log
        self.interrupt = interrupt
        self.step_started = time.perf_counter()
        self.step_s = 0.0
        self.durations: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.reporter.started(state.global_step, state.max_steps)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_s = time.perf_counter() - self.step_started
        self.durations.append(self.step_s)
        self.interrupt.stop_after_step(control)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if not logs or "reward" not in logs:
            return  # the end-of-training summary, not a step
        stats = StepStats(
            step=state.global_step,
            total_steps=state.max_steps,
            reward=_num(logs, "reward") or 0.0,
            reward_std=_num(logs, "reward_std") or 0.0,
            accuracy=_num(logs, "rewards/accuracy/mean") or 0.0,
            format=_num(logs, "rewards/format/mean") or 0.0,
            stop=_num(logs, "rewards/stop/mean") or 0.0,
            completion_tokens=_num(logs, "completions/mean_length") or 0.0,
            clipped_ratio=_num(logs, "completions/clipped_ratio") or 0.0,
            step_s=self.step_s,
            loss=_num(logs, "loss"),
            kl=_num(logs, "kl"),
            entropy=_num(logs, "entropy"),
            learning_rate=_num(logs, "learning_rate"),
        )
        self.log.append(stats)
        self.reporter.step(stats)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.reporter.finished()
