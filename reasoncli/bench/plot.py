"""The accuracy-versus-tokens figure as a PNG, with matplotlib from the `plot` extra.

matplotlib is imported only here and only when a plot is asked for: it is an optional extra,
and importing it costs about a second that `reason --help` should not pay.
"""

from __future__ import annotations

from pathlib import Path

from reasoncli.bench.report import Report, largest_runs
from reasoncli.errors import ReasonError

__all__ = ["PlotUnavailable", "require_matplotlib", "write_plot"]


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


def write_plot(report: Report, path: Path) -> Path:
    """Draw each strategy's cells (with Wilson 95% bars) and its subset maj@k estimates."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and no GUI backend probing
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        strategies = list(dict.fromkeys(c.strategy for c in report.cells))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
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
                ax.plot(
                    [max(p.tokens, 1.0) for p in c.subsets],
                    [p.maj_at for p in c.subsets],
                    linestyle="--",
                    marker=".",
                    color=color,
                    alpha=0.6,
                    label=f"{c.strategy} maj@k (subsets of {c.budget})",
                )
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.set_xlabel("mean generated tokens per question")
        ax.set_ylabel("accuracy")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{report.model or '?'} on {Path(report.dataset or '?').name}", fontsize=10)
        if report.cells:
            ax.legend(fontsize=8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
