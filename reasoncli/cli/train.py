"""`reason train grpo` (train, export, register) and `reason train heldout` (evaluation data).

Flags become a `TrainRequest` (whose fields declare them, `reasoncli.train.request`);
`reasoncli.train` checks and runs it; this module only picks the reporter and writes the result:
the model name (or one JSON object) on stdout, a summary on stderr. Everything heavy is imported
inside the commands, so `reason --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from reasoncli.cli.flags import number_option, request_flags
from reasoncli.cli.io import Terminal
from reasoncli.errors import ExitCode
from reasoncli.train.request import DIFFICULTY_HELP, TrainRequest

if TYPE_CHECKING:
    from reasoncli.train.progress import TrainReporter

T = TypeVar("T")

train_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help='Train a small reasoner with GRPO (needs `pip install "reasoncli[train]"`).',
)


@train_app.command("grpo")
@request_flags(TrainRequest)
def grpo(
    *,
    flags: dict[str, Any],  # TrainRequest's fields (cli.flags)
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
) -> None:
    """Train with TRL's GRPOTrainer on rewards for accuracy, format and stopping, export to GGUF,
    check the export, and register it under --out. Ctrl-C saves a checkpoint; --resume goes on."""
    from reasoncli.train.grpo import prepare_training

    term = Terminal()
    job = prepare_training(TrainRequest(**flags))
    outcome = run_reported(
        job.run,
        term,
        quiet=quiet,
        resume_hint="continue from the last checkpoint with: reason train grpo --resume "
        f"{job.run_dir}",
    )
    _write_outcome(term, outcome.to_json(), json_out=json_out, quiet=quiet)
    if outcome.interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)


def run_reported(
    run: Callable[[TrainReporter], T], term: Terminal, *, quiet: bool, resume_hint: str
) -> T:
    """`run(reporter)` with Rich progress on a terminal (else silent), the bar stopped however
    it ends; Ctrl-C says how to continue (`resume_hint`) and exits 130. Both train commands."""
    from reasoncli.train.progress import SilentReporter
    from reasoncli.train.render import RichReporter

    live = term.stderr_is_tty and not quiet
    reporter: TrainReporter = RichReporter(term.err_console()) if live else SilentReporter()
    try:
        return run(reporter)
    except KeyboardInterrupt:
        reporter.finished()
        term.stderr.write(f"interrupted: {resume_hint}\n")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        reporter.finished()


def _write_outcome(term: Terminal, result: dict[str, Any], *, json_out: bool, quiet: bool) -> None:
    """stdout: one JSON object, or the model name (nothing if interrupted: there is no model
    yet); stderr: the summary, or at least how to continue an interrupted run."""
    from reasoncli.train.render import render_summary

    if json_out:
        term.stdout.write(json.dumps(result, indent=2) + "\n")
    elif not result["interrupted"]:
        term.stdout.write(result["model"] + "\n")
    term.stdout.flush()
    if not quiet and not json_out:
        render_summary(term.err_console(), result)
    elif result["interrupted"]:
        term.stderr.write(
            f"interrupted: continue with: reason train grpo --resume {result['run_dir']}\n"
        )


@train_app.command("heldout")
def heldout_problems(
    task: Annotated[
        str,
        typer.Option(
            "--task",
            help="arithmetic (hash-held-out), phrasings (held-out sentence shapes), gsm8k-steps "
            "(held-out GSM8K sources) or mixed (a third of each).",
        ),
    ] = "arithmetic",
    count: Annotated[int, number_option("--count", "-n", help="How many problems.", low=1)] = 100,
    difficulty: Annotated[int, typer.Option("--difficulty", help=DIFFICULTY_HELP)] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed, as given to `train grpo`.")] = 0,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="heldout, or train: N problems of the training split, as `train grpo --limit "
            "N` draws them (for `reason rollouts` and `reason train verifier`).",
        ),
    ] = "heldout",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write held-out problems (never trained on) as generic JSONL for `reason bench`. With the
    same --seed and --difficulty they are the ones `train grpo` writes to RUN_DIR/heldout.jsonl."""
    from reasoncli.errors import UsageError
    from reasoncli.train.data import heldout_line, task_data, write_heldout

    if split not in ("heldout", "train"):
        raise UsageError(f"--split must be heldout or train, not {split!r}")
    if split == "train":
        problems = task_data(task, difficulty=difficulty, seed=seed, limit=count, heldout=0).train
    else:
        problems = task_data(task, difficulty=difficulty, seed=seed, limit=1, heldout=count).heldout
    if out is not None:
        write_heldout(problems, out)
        sys.stderr.write(f"wrote {len(problems)} {split} problems to {out}\n")
        return
    sys.stdout.write("".join(heldout_line(p) + "\n" for p in problems))
