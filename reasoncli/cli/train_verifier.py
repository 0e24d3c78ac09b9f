"""`reason train verifier`: an ORM or PRM from `reason rollouts` files, exported to GGUF.

Flags become a `VerifierRequest`; `reasoncli.train.verifier_job` checks and runs it. stdout
gets the model name (or one JSON object), stderr the progress lines on a terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reasoncli.cli.flags import number_option
from reasoncli.cli.io import Terminal
from reasoncli.cli.train import run_reported, train_app
from reasoncli.errors import ExitCode


@train_app.command("verifier")
def verifier(
    rollouts: Annotated[
        list[Path], typer.Argument(help="`reason rollouts` JSONL files (graded solutions).")
    ],
    kind: Annotated[
        str, typer.Option("--kind", help="orm: whole solutions; prm: every step prefix.")
    ] = "orm",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Base model to fine-tune [default model].")
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="PRM: the model that completes step prefixes [rollouts']."),
    ] = None,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Registry name [MODEL-KIND].")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Labels, checkpoints, export [runs/OUT].")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing name.")] = False,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps.")] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per step.")] = 8,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--lr")] = 2e-5,
    heldout: Annotated[
        int, number_option("--heldout", help="Questions kept out, by smallest hash.", low=0)
    ] = 16,
    mc_completions: Annotated[
        int, typer.Option("--mc-completions", help="PRM: completions per step prefix.")
    ] = 4,
    mc_max_tokens: Annotated[
        int, typer.Option("--mc-max-tokens", help="PRM: tokens per completion.")
    ] = 64,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every")] = 50,
    export: Annotated[
        str,
        typer.Option(
            "--export",
            help="f16 [default] or q8_0. A verifier's fine-tuning moves weights by about one "
            "Q8_0 step, so Q8_0 can round it away (from an 8-bit base, nearly all of it).",
        ),
    ] = "f16",
    threads: Annotated[int | None, typer.Option("--threads", help="llama.cpp threads.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Fine-tune a Yes/No verifier on graded rollouts (PRM labels by Monte-Carlo completion),
    export it to GGUF, check it on held-out questions and register it for --verifier orm:/prm:.
    Rerun the same command to resume: labels and checkpoints in the run directory are kept."""
    from reasoncli.train.verifier_job import VerifierRequest, prepare_verifier

    term = Terminal()
    job = prepare_verifier(
        VerifierRequest(
            rollouts=tuple(rollouts),
            kind=kind,
            model=model,
            policy=policy,
            out=out,
            run_dir=run_dir,
            force=force,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            heldout=heldout,
            mc_completions=mc_completions,
            mc_max_tokens=mc_max_tokens,
            seed=seed,
            checkpoint_every=checkpoint_every,
            export=export,
            threads=threads,
        )
    )
    resume_hint = f"rerun the same command to resume ({job.run_dir})"
    summary = run_reported(job.run, term, quiet=quiet, resume_hint=resume_hint)
    if json_out:
        term.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif not summary["interrupted"]:
        term.stdout.write(summary["model"] + "\n")
    if summary["interrupted"]:
        term.stderr.write(f"interrupted: {resume_hint}\n")
        raise typer.Exit(ExitCode.INTERRUPTED)
