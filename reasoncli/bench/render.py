"""The report for humans: Rich tables and a compact accuracy-versus-tokens curve in text.

The text curve is deliberately tiny (a dozen lines) so that it fits under the tables in a
terminal or a CI log; the PNG (`plot.py`) is the figure to publish.
"""

from __future__ import annotations

import math
from typing import Any

from reasoncli.bench.compare import CellComparison, Comparison, Estimate, gain_metric
from reasoncli.bench.report import Report, largest_runs

__all__ = ["MARKERS", "curve_lines", "render_comparison", "render_report", "verdicts"]

MARKERS = "●▲■◆★✚"
SUBSET_MARKER = "·"


def render_report(report: Report, console: Any) -> None:
    from rich.table import Table

    console.print(
        f"[bold]{report.model or '?'}[/] on {report.dataset or '?'} ({report.format or '?'}): "
        f"{report.samples} samples in {report.runs} run(s), {report.path}"
    )
    if not report.cells:
        console.print("no samples yet")
        return
    table = Table(title="accuracy against compute", title_justify="left")
    # A judge's reading is compute too: shown beside the generated tokens when one was used.
    judged = any(c.mean_verifier_tokens for c in report.cells)
    cost = ["generated tok/q", "verifier tok/q", "total tok/q"] if judged else ["tokens/q"]
    for name, justify in [
        ("strategy", "left"),
        ("budget", "left"),
        ("questions", "right"),
        ("accuracy", "right"),
        ("95% CI (Wilson)", "right"),
        ("pass@k", "right"),
        ("maj@k", "right"),
        *((name, "right") for name in cost),
        ("wall", "right"),
        ("tok/s", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c in report.cells:
        tokens = [f"{c.mean_tokens:,.0f}"]
        if judged:
            tokens += [_count(c.mean_verifier_tokens), _count(c.mean_total_tokens)]
        table.add_row(
            c.strategy,
            c.budget,
            str(c.questions),
            f"{c.accuracy:.1%}",
            f"{c.ci_low:.1%}–{c.ci_high:.1%}",
            f"{_pct(c.pass_at_n)} @{c.n}",
            f"{_pct(c.maj_at_n)} @{c.n}",
            *tokens,
            _duration(c.wall_s),
            f"{c.tokens_per_s:,.1f}",
        )
    console.print(table)
    largest = largest_runs(report.cells)
    if any(c.n > 1 for c in largest):
        sub = Table(title="from subsets of one run (no new generation)", title_justify="left")
        for name in ("strategy", "run", "k", "tokens/q", "pass@k (95% CI)", "maj@k (95% CI)"):
            sub.add_column(name, justify="left" if name in ("strategy", "run") else "right")
        for c in largest:
            for p in c.subsets:
                sub.add_row(
                    c.strategy, c.budget, str(p.k), f"{p.tokens:,.0f}",
                    _interval(Estimate(p.pass_at, *p.pass_ci)),
                    _interval(Estimate(p.maj_at, *p.maj_ci)),
                )  # fmt: skip
        console.print(sub)
    for line in curve_lines(report):
        console.print(line, markup=False, highlight=False)
    console.print(f"note: {report.subsets_note}")
    console.print(
        f"bench overhead: {report.overhead:.1%} of {_duration(report.wall_s)} wall time was "
        f"outside prompt processing and generation (grading {_duration(report.grade_s)}); "
        f"model load {_duration(report.load_s)}"
    )
    for note in report.notes:
        console.print(f"note: {note}")


def render_comparison(comparison: Comparison, console: Any) -> None:
    """One table per strategy and budget: each file's estimate, then each file minus the first."""
    from rich.table import Table

    base = comparison.labels[0]
    for cell in comparison.cells:
        table = Table(
            title=f"{cell.strategy} {cell.budget}: {cell.questions} questions in every file",
            title_justify="left",
        )
        table.add_column("metric")
        for label in comparison.labels:
            table.add_column(label, justify="right")
        for label in comparison.labels[1:]:
            table.add_column(f"Δ {label} − {base}", justify="right")
        for row in cell.rows:
            deltas = [_signed(d) for d in row.deltas[1:] if d is not None]
            table.add_row(row.metric, *(_interval(v) for v in row.values), *deltas)
        tokens = [f"{t:,.0f}" for t in cell.mean_tokens]
        table.add_row("tokens/q", *tokens, *("" for _ in comparison.labels[1:]))
        console.print(table)
        for line in verdicts(comparison, cell):
            console.print(line, markup=False, highlight=False)
    console.print(
        "note: accuracy intervals are Wilson 95%; the others are bootstrap 95% over questions "
        f"({comparison.resamples} resamples), paired for the differences"
    )
    for note in comparison.notes:
        console.print(f"note: {note}")


def verdicts(comparison: Comparison, cell: CellComparison) -> list[str]:
    """Plain words for the voting-gain row: does voting help each model more or less than the
    first one, beyond the noise of these questions?"""
    metric = gain_metric(cell.n)
    row = next((r for r in cell.rows if r.metric == metric), None)
    if row is None:
        return []
    base = comparison.labels[0]
    lines = [
        f"voting gain ({metric}) on {label}: {_signed(v)}"
        for label, v in zip(comparison.labels, row.values, strict=True)
    ]
    for label, delta in zip(comparison.labels[1:], row.deltas[1:], strict=True):
        assert delta is not None
        if delta.excludes_zero():
            word = "more" if delta.value > 0 else "less"
            lines.append(f"voting gains {word} on {label} than on {base} ({_signed(delta)})")
        else:
            lines.append(
                f"voting gains about as much on {label} as on {base}: the difference "
                f"{_signed(delta)} is within the noise"
            )
    return lines


def _interval(e: Estimate) -> str:
    return f"{e.value:.1%} ({e.low:.1%}–{e.high:.1%})"


def _signed(e: Estimate) -> str:
    return f"{e.value * 100:+.1f} pts ({e.low * 100:+.1f} to {e.high * 100:+.1f})"


def curve_lines(report: Report, width: int = 48, height: int = 10) -> list[str]:
    """Accuracy (y) against mean tokens per question (x, log scale) as a few lines of text.

    Each strategy's measured cells get a marker; `·` marks maj@k estimated from subsets of the
    strategy's largest run.
    """
    series = _series(report)
    points = [p for _, pts, _ in series for p in pts]
    if not points:
        return []
    xs = [math.log2(max(x, 1.0)) for x, _ in points]
    x0, x1 = min(xs), max(xs)
    top = max(0.1, math.ceil(max(y for _, y in points) * 10) / 10)
    grid = [[" "] * width for _ in range(height)]
    for _, pts, marker in sorted(series, key=lambda s: s[2] != SUBSET_MARKER):
        for x, y in pts:
            col = _scale(math.log2(max(x, 1.0)), x0, x1, width)
            row = height - 1 - _scale(y, 0.0, top, height)
            grid[row][col] = marker
    lines = ["accuracy vs tokens per question (log scale)"]
    for i, cells in enumerate(grid):
        label = f"{top:>4.0%}" if i == 0 else ("  0%" if i == height - 1 else "    ")
        lines.append(f"{label} │{''.join(cells)}")
    lines.append("     └" + "─" * width)
    left, right = f"{2**x0:,.0f}", f"{2**x1:,.0f} tokens"
    lines.append("      " + left + " " * max(1, width - len(left) - len(right)) + right)
    legend = [f"{marker} {name}" for name, _, marker in series]
    lines.append("      " + "   ".join(legend))
    return lines


def _series(report: Report) -> list[tuple[str, list[tuple[float, float]], str]]:
    out: list[tuple[str, list[tuple[float, float]], str]] = []
    strategies = list(dict.fromkeys(c.strategy for c in report.cells))
    for i, name in enumerate(strategies):
        cells = [c for c in report.cells if c.strategy == name]
        out.append((name, [(c.mean_tokens, c.accuracy) for c in cells], MARKERS[i % len(MARKERS)]))
    for c in largest_runs(report.cells):
        if c.n > 1:
            pts = [(p.tokens, p.maj_at) for p in c.subsets]
            out.append((f"{c.strategy} maj@k from {c.budget}", pts, SUBSET_MARKER))
    return out


def _scale(value: float, low: float, high: float, size: int) -> int:
    if high <= low:
        return size // 2
    return min(size - 1, max(0, round((value - low) / (high - low) * (size - 1))))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _count(value: float | None) -> str:
    """A mean token count; "–" where the file did not record it (runs before it was kept)."""
    return "–" if value is None else f"{value:,.0f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
