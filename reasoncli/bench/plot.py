"""The accuracy figures as PNGs, with matplotlib from the `plot` extra.

matplotlib is imported only here and only when a plot is asked for: it is an optional extra,
and importing it costs about a second that `reason --help` should not pay.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reasoncli.bench.report import Report, largest_runs
from reasoncli.errors import ReasonError

if TYPE_CHECKING:
    from reasoncli.bench.compare import Comparison

__all__ = [
    "PlotUnavailable",
    "figure",
    "require_matplotlib",
    "write_compare_plot",
    "write_plot",
]


class PlotUnavailable(ReasonError):
    """--plot was asked for but matplotlib is not installed."""


def require_matplotlib() -> None:
    """Fail before a long run, not after it, when the figure cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'reasoncli[plot]' (or pip install matplotlib)"
        ) from None


@contextmanager
def figure(
    path: Path, rows: int = 1, cols: int = 1, size: tuple[float, float] = (7, 4.5)
) -> Iterator[tuple[Any, list[str]]]:
    """A grid of axes (a 2-D array) and the colour cycle; the figure is saved to `path` when
    the block ends without error, and closed either way."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and no GUI backend probing
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=size, dpi=120, squeeze=False)
    try:
        yield axes, plt.rcParams["axes.prop_cycle"].by_key()["color"]
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def _accuracy_axis(ax: Any, xlabel: str) -> None:
    """Accuracy in percent from 0 against a log-2 count (tokens or branches)."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)


def _dashed(ax: Any, xs: list[Any], ys: list[Any], color: Any, alpha: float, label: str) -> None:
    """A derived curve (maj@k from subsets, pass@k): dashed with small dots, under the
    measured ones."""
    ax.plot(xs, ys, linestyle="--", marker=".", color=color, alpha=alpha, label=label)


def write_plot(report: Report, path: Path) -> Path:
    """Draw each strategy's cells (with Wilson 95% bars) and its subset maj@k estimates."""
    with figure(path) as (axes, colors):
        ax = axes[0][0]
        strategies = list(dict.fromkeys(c.strategy for c in report.cells))
        for i, name in enumerate(strategies):
            color = colors[i % len(colors)]
            cells = sorted(
                (c for c in report.cells if c.strategy == name), key=lambda c: c.mean_tokens
            )
            xs = [max(c.mean_tokens, 1.0) for c in cells]
            ys = [c.accuracy for c in cells]
            err = [[c.accuracy - c.ci_low for c in cells], [c.ci_high - c.accuracy for c in cells]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=color, label=name)
            for c, x, y in zip(cells, xs, ys, strict=True):
                ax.annotate(c.budget, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for c in largest_runs(report.cells):
            if c.n > 1:
                color = colors[strategies.index(c.strategy) % len(colors)]
                _dashed(
                    ax,
                    [max(p.tokens, 1.0) for p in c.subsets],
                    [p.maj_at for p in c.subsets],
                    color=color,
                    alpha=0.6,
                    label=f"{c.strategy} maj@k (subsets of {c.budget})",
                )
        _accuracy_axis(ax, "mean generated tokens per question")
        ax.set_title(f"{report.model or '?'} on {Path(report.dataset or '?').name}", fontsize=10)
        if report.cells:
            ax.legend(fontsize=8)
    return path


def write_compare_plot(comparison: Comparison, path: Path) -> Path:
    """One panel per compared strategy and budget: each file's maj@k (solid, with its bootstrap
    band) and pass@k (dashed) against k, so the gap between the lines is what voting leaves on
    the table and the gap between colours is what the model change bought."""
    cells = comparison.cells
    cols = min(len(cells), 3)
    rows = -(-len(cells) // cols)
    with figure(path, rows, cols, size=(5 * cols, 4 * rows)) as (axes, colors):
        for ax, cell in zip(axes.flat, cells, strict=False):
            for i, (label, curve) in enumerate(zip(comparison.labels, cell.curves, strict=True)):
                color = colors[i % len(colors)]
                ks = [p.k for p in curve]
                maj = [p.maj_at for p in curve]
                ax.plot(ks, [e.value for e in maj], marker="o", color=color, label=f"{label} maj@k")
                ax.fill_between(
                    ks, [e.low for e in maj], [e.high for e in maj], color=color, alpha=0.15
                )
                _dashed(ax, ks, [p.pass_at.value for p in curve], color, 0.8, f"{label} pass@k")
            _accuracy_axis(ax, "k (branches)")
            ax.set_title(f"{cell.strategy} {cell.budget}, {cell.questions} questions", fontsize=10)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(cells) :]:
            ax.set_visible(False)
    return path
