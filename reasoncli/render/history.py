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

__all__ = ["run_renderable", "runs_lines", "runs_table"]

MIN_QUESTION_WIDTH = 12
ANSWER_WIDTH = 24


def _when(created_at: str) -> str:
    """A stored ISO timestamp as the history shows it: to the second, a space for the T."""
    return created_at[:19].replace("T", " ")


def runs_table(runs: list[RunSummary], width: int = 120) -> RenderableType:
    """One line a run in `width` cells: every column keeps its width and only the question
    gives way, cut with an ellipsis, so a narrow terminal never wraps a run."""
    if not runs:
        return Text("no runs logged yet", style="dim")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("id", "right"),
        ("created", "left"),
        ("strategy", "left"),
        ("model", "left"),
        ("answer", "left"),
        ("share", "right"),
        ("tokens", "right"),
        ("status", "right"),
    )
    rows = [
        [
            str(run.id),
            _when(run.created_at),
            run.strategy,
            run.model,
            "none" if run.answer is None else _one_line(run.answer, ANSWER_WIDTH),
            f"{run.share:.0%}",
            f"{run.generated_tokens:,}",
            _status(run),
        ]
        for run in runs
    ]
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, (name, _) in enumerate(columns)]
    room = max(MIN_QUESTION_WIDTH, width - sum(widths) - 2 * len(columns))
    table = Table(box=None, pad_edge=False)
    for (name, justify), w in zip(columns, widths, strict=True):
        table.add_column(name, justify=justify, no_wrap=True, min_width=w)
    table.add_column("question", no_wrap=True, overflow="ellipsis")
    for run, row in zip(runs, rows, strict=True):
        answer = Text(row[4], style="red" if run.answer is None else "green")
        table.add_row(*row[:4], answer, *row[5:], _one_line(run.question, room))
    return table


def runs_lines(runs: list[RunSummary]) -> list[str]:
    """`logs list` for a pipe: one tab-separated line a run, nothing cut or wrapped (id,
    created, strategy, model, answer, share, tokens, status, question); `--json` has all."""
    return [
        "\t".join(
            (
                str(run.id),
                _when(run.created_at),
                run.strategy,
                run.model,
                "-" if run.answer is None else " ".join(run.answer.split()),
                f"{run.share:.0%}",
                str(run.generated_tokens),
                _status(run),
                " ".join(run.question.split()),
            )
        )
        for run in runs
    ]


def run_renderable(record: RunRecord) -> RenderableType:
    """A header (when, where from, how it ended, the question), then the run's own summary."""
    s = record.summary
    head = Text(f"run {s.id}", style="bold")
    head.append(f"  {_when(s.created_at)} UTC · {s.source} · ", style="dim")
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
