"""`reason bench DATA`, `bench report FILE`, `bench compare A B` and `reason rollouts DATA`.

`bench` is a command group whose default command is `run`, so `reason bench data.jsonl ...` and
`reason bench report results.jsonl` both work: an argument that is not a sub-command name is
taken as the DATA of `run` (`reason bench run report` benchmarks a file named "report").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from reasoncli.cli.ask import ModelOpt, Quiet, Temperature, model_request
from reasoncli.cli.flags import engine_flags, number_option, option_of, strategy_flags
from reasoncli.cli.io import Terminal
from reasoncli.cli.signals import interrupt_code, run_signals
from reasoncli.errors import ExitCode


class _RunByDefault(TyperGroup):
    """A group that treats `bench DATA ...` as `bench run DATA ...`."""

    # typer.Context: typer's own Context subclasses the click one it vendors (not `click`'s).
    def parse_args(  # type: ignore[override]
        self, ctx: typer.Context, args: list[str]
    ) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Measure accuracy against compute on your data: `reason bench DATA` runs a grid, "
    "`reason bench report FILE` summarises results, `reason bench compare A B` pairs them.",
)

Data = Annotated[
    str | None,
    typer.Argument(
        help="JSONL questions: GSM8K, MATH, generic or multiple choice (or 'gsm8k-sample').",
        show_default=False,
    ),
]
MaxTokensOpt = Annotated[
    int | None, option_of("max_tokens", command="bench", help="Token budget per branch [512].")
]
Limit = Annotated[int | None, number_option("--limit", help="Use the first N questions.", low=1)]
SeedOpt = Annotated[
    int | None, option_of("seed", command="bench", help="Base seed; branch i uses seed+i [0].")
]
BranchList = Annotated[
    str | None,
    option_of("branches", command="bench", type=str, help="Comma-separated branch counts [8]."),
]
BudgetList = Annotated[
    str | None,
    option_of(
        "budget_tokens",
        command="bench",
        type=str,
        help="Comma-separated total token budgets per question.",
    ),
]
GroupBranches = Annotated[
    int | None,
    option_of("branches", command="bench", help="Completions per group [8].", min=2),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")]
Resume = Annotated[
    Path | None, typer.Option("--resume", help="Continue this output file where it stopped.")
]
Plot = Annotated[
    Path | None,
    typer.Option("--plot", help="Write the accuracy-vs-tokens curve as a PNG (needs matplotlib)."),
]


@bench_app.command("run", help="Run strategies × budgets over a dataset, saving every sample.")
@strategy_flags("bench")
@engine_flags
def run(
    ctx: typer.Context,
    data: Data = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", "-s", help="Comma-separated strategies [vote].")
    ] = None,
    branches: BranchList = None,
    budget_tokens: BudgetList = None,
    max_tokens: MaxTokensOpt = None,
    limit: Limit = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Results JSONL [results/run-DATE-TIME.jsonl]."),
    ] = None,
    resume: Resume = None,
    model: ModelOpt = None,
    seed: SeedOpt = None,
    temperature: Temperature = None,
    *,
    options: dict[str, Any],  # the flags declared with a `bench` help (cli.flags)
    plot: Plot = None,
    json_out: JsonOut = False,
    quiet: Quiet = False,
) -> None:
    from reasoncli.bench.runner import BenchRequest, prepare_bench
    from reasoncli.cli.runner import load_session

    term = Terminal()
    job = prepare_bench(
        BenchRequest(
            data=data,
            strategies=_names(strategy),
            branches=_ints(branches, "--branches"),
            budget_tokens=_ints(budget_tokens, "--budget-tokens"),
            options=options,
            **_run_flags(ctx.params),
        )
    )
    if plot:
        from reasoncli.bench.plot import require_matplotlib

        require_matplotlib()
    multi = len(job.plan.strategies) > 1
    # Ctrl-C (SIGTERM, SIGHUP) through run_signals from the model load on: Python's own handler
    # raises KeyboardInterrupt wherever the main thread is, and inside llama.cpp's log callback
    # (thousands of lines each time a question opens a context) ctypes drops it, so the bench
    # would run on to the end as if never interrupted. run_signals sends such a signal again.
    with run_signals():
        session = load_session(model_request(ctx.params, job.model_arg))
        try:
            with _progress(
                term,
                quiet,
                title=job.dataset.path.name,
                cell=lambda r: f"{r['strategy']} {r['budget']}" if multi else str(r["budget"]),
                score=lambda r: float(bool(r["correct"])),
            ) as progress:
                job.run(session, progress)
        except KeyboardInterrupt:
            saved = f"{job.written} new sample(s) saved"
            _interrupted(term, saved, f"reason bench --resume {job.out}")
            _report(job.out, json_out, plot, term)
            raise typer.Exit(interrupt_code()) from None
        finally:
            session.close()
    _report(job.out, json_out, plot, term)


@bench_app.command("report", help="Summarise a results file: tables, a text curve, --plot, --json.")
def report(
    file: Annotated[Path, typer.Argument(help="A results JSONL written by `reason bench`.")],
    plot: Plot = None,
    json_out: JsonOut = False,
) -> None:
    if plot:
        from reasoncli.bench.plot import require_matplotlib

        require_matplotlib()
    _report(file, json_out, plot, Terminal())


@bench_app.command(
    "compare",
    help="Put results files side by side, paired by question: each metric with its 95% "
    "interval, each file minus the first, and whether voting gains more or less.",
)
def compare(
    files: Annotated[
        list[Path],
        typer.Argument(help="Two or more results JSONL files; the first is the baseline."),
    ],
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write pass@k and maj@k against k as a PNG (matplotlib)."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the comparison as JSON on stdout.")
    ] = False,
) -> None:
    from reasoncli.bench.compare import compare_files

    if plot:
        from reasoncli.bench.plot import require_matplotlib

        require_matplotlib()
    term = Terminal()
    comparison = compare_files(files)
    if plot:
        from reasoncli.bench.plot import write_compare_plot

        write_compare_plot(comparison, plot)
    from reasoncli.bench.render import render_comparison

    _show(term, comparison, render_comparison, json_out, plot)


@engine_flags
def rollouts(
    ctx: typer.Context,
    data: Annotated[str, typer.Argument(help="JSONL questions with known answers.")],
    branches: GroupBranches = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output JSONL.")] = None,
    resume: Resume = None,
    max_tokens: MaxTokensOpt = None,
    limit: Limit = None,
    model: ModelOpt = None,
    seed: SeedOpt = None,
    temperature: Temperature = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    from reasoncli.bench.rollouts import RolloutRequest, prepare_rollouts, rollout_summary
    from reasoncli.cli.runner import load_session

    term = Terminal()
    job = prepare_rollouts(RolloutRequest(data, branches, **_run_flags(ctx.params)))
    code: int = ExitCode.OK
    with run_signals():  # a Ctrl-C in llama.cpp's log callback is not lost (see `run`)
        session = load_session(model_request(ctx.params, job.model_arg))
        try:
            with _progress(
                term,
                quiet,
                title=f"rollouts {job.dataset.path.name}",
                cell=lambda r: "",
                score=lambda r: sum(r["reward_components"]["accuracy"]) / len(r["advantages"]),
                label="accuracy",
            ) as progress:
                job.run(session, progress)
        except KeyboardInterrupt:
            saved = f"{job.written} new group(s) saved"
            _interrupted(term, saved, f"reason rollouts {data} --resume {job.out}")
            code = interrupt_code()
        finally:
            session.close()
    summary = rollout_summary(job.out)
    if json_out:
        _write(term, json.dumps(summary, indent=2))
    else:
        _write(
            term,
            f"{summary['groups']} groups ({job.branches} completions each) in {summary['file']}: "
            f"mean accuracy {summary['mean_accuracy']:.1%}, {summary['groups_with_signal']} "
            "group(s) with a learning signal (non-zero advantages)",
        )
    if code:
        raise typer.Exit(code)


def _report(path: Path, json_out: bool, plot: Path | None, term: Terminal) -> None:
    from reasoncli.bench.report import build_report

    report = build_report(path)
    if plot:
        from reasoncli.bench.plot import write_plot

        write_plot(report, plot)
    from reasoncli.bench.render import render_report

    _show(term, report, render_report, json_out, plot)


def _show(
    term: Terminal, result: Any, render: Callable[[Any, Any], None], json_out: bool,
    plot: Path | None,
) -> None:  # fmt: skip
    """A report or comparison on stdout: one JSON object with --json, else Rich tables."""
    if json_out:
        data = result.to_json()
        data["plot"] = str(plot) if plot else None
        _write(term, json.dumps(data, indent=2))
        return
    console = term.out_console()
    console.width = max(console.width, 120)  # ten columns; pipes default to 80
    render(result, console)
    if plot:
        console.print(f"plot: {plot}")


def _progress(term: Terminal, quiet: bool, **kwargs: Any) -> Any:
    from reasoncli.bench.progress import NullProgress, RichProgress

    if quiet or not term.stderr_is_tty:
        return NullProgress()
    return RichProgress(term.err_console(), **kwargs)


def _interrupted(term: Terminal, saved: str, again: str) -> None:
    """Ctrl-C: say what was kept and how to go on, on stderr even when it is not a TTY."""
    term.stderr.write(f"interrupted: {saved}; continue with: {again}\n")
    term.stderr.flush()


def _write(term: Terminal, text: str) -> None:
    term.stdout.write(text + "\n")
    term.stdout.flush()


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _run_flags(params: dict[str, Any]) -> dict[str, Any]:
    """The flags `bench run` and `bench rollouts` share (`RunFlags`), from `ctx.params`."""
    from dataclasses import fields

    from reasoncli.bench.runner import RunFlags

    return {f.name: params[f.name] for f in fields(RunFlags)}


def _ints(value: str | None, flag: str) -> list[int] | None:
    if value is None:
        return None
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a comma-separated list of integers", param_hint=flag
        ) from None
    return numbers
