"""How training looks on a terminal: a Rich progress line per step, and the closing summary.

Progress goes to stderr and only to a terminal (pipes and logs get the reward log instead); the
summary is a few lines on stderr, while stdout carries just the model name, or one JSON object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reasoncli.train.progress import StepStats

__all__ = ["RichReporter", "render_summary", "step_line", "summary_lines"]


class RichReporter:
    """One line per step (reward, accuracy, format and stop rates, length, time), under which a
    progress bar with the ETA stays at the bottom of the terminal."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.progress: Any = None
        self.task: Any = None

    def status(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False, style="dim")

    def started(self, start_step: int, total_steps: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from reasoncli.bench.progress import time_columns

        self.progress = Progress(
            TextColumn("GRPO step"),
            MofNCompleteColumn(),
            BarColumn(bar_width=30),
            *time_columns(),
            console=self.console,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step)

    def step(self, stats: StepStats) -> None:
        self.console.print(step_line(stats), markup=False, highlight=False)
        if self.progress is not None:
            self.progress.update(self.task, completed=stats.step)

    def finished(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def step_line(stats: StepStats) -> str:
    width = len(str(stats.total_steps))
    return (
        f"step {stats.step:>{width}}/{stats.total_steps}  reward {stats.reward:.2f}  "
        f"acc {stats.accuracy:4.0%}  format {stats.format:4.0%}  stop {stats.stop:4.0%}  "
        f"len {stats.completion_tokens:3.0f}  {stats.step_s:.1f} s"
    )


def _rel(path: Path | None) -> str:
    if path is None:
        return "-"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary_lines(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, style) lines for `outcome` (a `TrainOutcome.to_json()` object)."""
    lines: list[tuple[str, str]] = []
    name, run_dir = outcome["model"], Path(outcome["run_dir"])
    pace = f", {outcome['seconds_per_step']:.1f} s/step" if outcome["seconds_per_step"] else ""
    lines.append(
        (
            f"{name}: step {outcome['step']}/{outcome['steps']} of GRPO on {outcome['data']} "
            f"from {outcome['source']} ({outcome['device']}{pace})",
            "bold",
        )
    )
    start, end = outcome["start"], outcome["end"]
    if start and end:
        lines.append(
            (
                f"reward {start['reward']:.2f} -> {end['reward']:.2f}, accuracy "
                f"{start['accuracy']:.0%} -> {end['accuracy']:.0%}, stop {start['stop']:.0%} -> "
                f"{end['stop']:.0%} (means of the first and last {end['steps']} steps)",
                "",
            )
        )
    if outcome["interrupted"]:
        lines.append(
            (
                f"interrupted: checkpoint saved; continue with: reason train grpo --resume "
                f"{_rel(run_dir)}",
                "yellow",
            )
        )
        return lines
    check = outcome["greedy_check"]
    if check:
        verdict = f"greedy check: {check['matching']}/{check['tokens']} tokens match llama.cpp"
        if check["near_tie"]:
            verdict += f", then a near tie (logit gap {check['divergence_gap']:.3f})"
        elif check["divergence_gap"] is not None:
            verdict += f"; WARNING: diverged by {check['divergence_gap']:.2f} logits"
        if not check["prompt_tokens_match"]:
            verdict += "; WARNING: `reason ask` tokenizes the prompt differently"
        good = (check["equal"] or check["near_tie"]) and check["prompt_tokens_match"]
        style = "green" if good else "yellow"
        lines.append((f"export {_rel(Path(outcome['gguf']))} ({verdict})", style))
    lines.append((f"registered as {name} in {outcome['registered_in']}", ""))
    files = f"reward log {_rel(Path(outcome['reward_log']))}"
    if outcome["plot"]:
        files += f", curve {_rel(Path(outcome['plot']))}"
    lines.append((files, "dim"))
    if outcome["heldout"]:
        lines.append(
            (
                f"measure: reason bench {_rel(Path(outcome['heldout']))} --model {name} "
                "--strategy vote --branches 1,8",
                "dim",
            )
        )
    return lines


def render_summary(console: Any, outcome: dict[str, Any]) -> None:
    for text, style in summary_lines(outcome):
        console.print(text, style=style or None, markup=False, highlight=False, soft_wrap=True)
