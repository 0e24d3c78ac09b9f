"""Rich views of the run history: the `reason logs list` table and the `logs show` page.

`logs show` ends with the same summary a run prints (`render.summary`), drawn from the `Result`
rebuilt from the database, so a stored run reads like the run did.
"""

from __future__ import annotations

from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from reasoncli.history.record import RunRecord, RunSummary
from reasoncli.render.summary import summary_renderable

__all__ = ["run_renderable", "runs_table"]

QUESTION_WIDTH = 48
ANSWER_WIDTH = 24


def runs_table(runs: list[RunSummary]) -> RenderableType:
    if not runs:
        return Text("no runs logged yet", style="dim")
    table = Table(box=None, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("id", "right"),
        ("created", "left"),
        ("strategy", "left"),
        ("model", "left"),
        ("answer", "left"),
        ("share", "right"),
        ("tokens", "right"),
        ("status", "right"),
        ("question", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name in ("id", "created"))
    for run in runs:
        table.add_row(
            str(run.id),
            run.created_at[:19].replace("T", " "),
            run.strategy,
            run.model,
            Text("none", style="red")
            if run.answer is None
            else Text(_one_line(run.answer, ANSWER_WIDTH), style="green"),
            f"{run.share:.0%}",
            f"{run.generated_tokens:,}",
            _status(run),
            _one_line(run.question, QUESTION_WIDTH),
        )
    return table


def run_renderable(record: RunRecord) -> RenderableType:
    """A header (when, where from, how it ended, the question), then the run's own summary."""
    s = record.summary
    head = Text(f"run {s.id}", style="bold")
    head.append(f"  {s.created_at[:19].replace('T', ' ')} UTC · {s.source} · ", style="dim")
    head.append(_status(s))
    parts: list[RenderableType] = [head, Text(f"question: {s.question}")]
    if record.error:
        parts.append(Text(f"error: {record.error}", style="red"))
    if record.result is not None:
        parts.append(summary_renderable(record.result))
    else:
        parts.append(Text(f"{s.strategy} · {s.model} · no result", style="dim"))
    return Group(*parts)


def _status(run: RunSummary) -> str:
    if run.interrupted:
        return f"interrupted ({run.status})"
    return "ok" if run.status == 0 else f"exit {run.status}"


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
