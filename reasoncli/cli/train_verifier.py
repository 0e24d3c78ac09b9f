"""`reason train verifier`: an ORM or PRM from `reason rollouts` files, exported to GGUF.

Flags become a `VerifierRequest` (whose fields declare them, `reasoncli.train.request`);
`reasoncli.train.verifier_job` checks and runs it. stdout gets the model name (or one JSON
object), stderr the progress lines on a terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from reasoncli.cli.flags import request_flags
from reasoncli.cli.io import Terminal
from reasoncli.cli.train import run_reported, train_app
from reasoncli.errors import ExitCode
from reasoncli.train.request import VerifierRequest


@train_app.command("verifier")
@request_flags(VerifierRequest)
def verifier(
    rollouts: Annotated[
        list[Path], typer.Argument(help="`reason rollouts` JSONL files (graded solutions).")
    ],
    *,
    flags: dict[str, Any],  # VerifierRequest's fields but rollouts (cli.flags)
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Fine-tune a Yes/No verifier on graded rollouts (PRM labels by Monte-Carlo completion),
    export it to GGUF, check it on held-out questions and register it for --verifier orm:/prm:.
    Rerun the same command to resume: labels and checkpoints in the run directory are kept."""
    from reasoncli.train.verifier_job import prepare_verifier

    term = Terminal()
    job = prepare_verifier(VerifierRequest(rollouts=tuple(rollouts), **flags))
    resume_hint = f"rerun the same command to resume ({job.run_dir})"
    summary = run_reported(job.run, term, quiet=quiet, resume_hint=resume_hint)
    if json_out:
        term.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif not summary["interrupted"]:
        term.stdout.write(summary["model"] + "\n")
    if summary["interrupted"]:
        term.stderr.write(f"interrupted: {resume_hint}\n")
        raise typer.Exit(ExitCode.INTERRUPTED)
