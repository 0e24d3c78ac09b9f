"""`reason logs list|show|path|rm`: the runs kept by `ask`, `think` and `reason serve`.

Tables and JSON go to stdout; a history that cannot be read is one `Error:` line (exit 4)
through the app's error boundary.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from reasoncli.cli.flags import number_argument, number_option
from reasoncli.errors import UsageError

logs_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The history of runs: list, show, path, rm (every ask, think and served request).",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunId = Annotated[
    int, number_argument("run_id", low=1, help="The run's id, from `reason logs list`.")
]


@logs_app.command("list", help="The newest runs first, filtered.")
def list_runs(
    limit: Annotated[
        int, number_option("--limit", "-n", help="At most this many runs.", low=1)
    ] = 20,
    strategy: Annotated[str | None, typer.Option("--strategy", "-s", help="Only this one.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    search: Annotated[
        str | None, typer.Option("--search", help="Text in the question or the answer.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    from reasoncli.history import RunFilter
    from reasoncli.history import list_runs as query

    runs = query(RunFilter(limit, strategy, model, search))
    if json_out:
        _echo_json([r.to_json() for r in runs])
        return
    from reasoncli.cli.io import Terminal

    term = Terminal()
    if not term.stdout_is_tty:  # piped: whole values, one line a run, for cut/awk/grep
        from reasoncli.render.history import runs_lines

        for line in runs_lines(runs):
            term.stdout.write(line + "\n")
        return
    from reasoncli.render.history import runs_table

    console = term.out_console()
    console.print(runs_table(runs, console.width))


@logs_app.command(help="One run: its summary and vote, or everything with --json.")
def show(
    run_id: RunId,
    json_out: Annotated[
        bool, typer.Option("--json", help="The run, with `result` as `ask --json` printed it.")
    ] = False,
) -> None:
    from reasoncli.history import get_run

    record = get_run(run_id)
    if json_out:
        _echo_json(record.to_json())
        return
    from reasoncli.render.history import run_renderable

    _console().print(run_renderable(record))


@logs_app.command(help="Where the history is kept ($REASON_LOGS_PATH moves it).")
def path() -> None:
    from reasoncli.history import default_path

    _out(str(default_path()))


@logs_app.command(help="Remove one run, or every run with --all.")
def rm(
    run_id: Annotated[int | None, number_argument("run_id", low=1, help="The run's id.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Remove every run.")] = False,
) -> None:
    from reasoncli.history import delete_all, delete_run

    if (run_id is None) != all_runs:
        raise UsageError("give a run id or --all (not both)")
    if all_runs:
        removed = delete_all()
        _err(f"removed {removed} run(s)")
    else:
        assert run_id is not None
        delete_run(run_id)
        _err(f"removed run {run_id}")


def _echo_json(data: Any) -> None:
    _out(json.dumps(data, indent=2, ensure_ascii=False))


def _out(line: str) -> None:
    """One line on the run's stdout (`cli.io.Environment`: the process's, or a test's)."""
    from reasoncli.cli.io import current_environment

    print(line, file=current_environment().stdout, flush=True)


def _err(line: str) -> None:
    from reasoncli.cli.io import current_environment

    print(line, file=current_environment().stderr)


def _console() -> Any:
    from reasoncli.cli.io import Terminal

    return Terminal().out_console()
