"""`reason train grpo` (train, export, register) and `reason train heldout` (evaluation data).

Flags become a `TrainRequest`; `reasoncli.train` checks and runs it; this module only picks the
reporter and writes the result: the model name (or one JSON object) on stdout, a summary on
stderr. Everything heavy is imported inside the commands, so `reason --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from reasoncli.cli.flags import number_option
from reasoncli.cli.io import Terminal
from reasoncli.errors import ExitCode

if TYPE_CHECKING:
    from reasoncli.train.progress import TrainReporter

T = TypeVar("T")

train_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help='Train a small reasoner with GRPO (needs `pip install "reasoncli[train]"`).',
)

_DIFFICULTY_HELP = "Arithmetic difficulty: 1 add/subtract to 20, 2 one step with ×/÷, 3 two steps."


@train_app.command("grpo")
def grpo(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Registry name or .gguf path (Llama architecture)."),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="Built-in problems: arithmetic [default], phrasings, gsm8k-steps or mixed.",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="JSONL with answers, any `reason bench` format, instead."),
    ] = None,
    difficulty: Annotated[int | None, typer.Option("--difficulty", help=_DIFFICULTY_HELP)] = None,
    limit: Annotated[
        int | None, number_option("--limit", help="Train on the first N questions.", low=1)
    ] = None,
    heldout: Annotated[
        int | None,
        number_option(
            "--heldout",
            help="Keep N questions out of training, written to RUN_DIR/heldout.jsonl "
            "[100 for --task, 0 for --data].",
            low=0,
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", "-o", help="Registry name of the trained model [MODEL-grpo]."),
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Checkpoints, logs, export [runs/OUT].")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue the run in this directory from its checkpoint."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing model name or run directory.")
    ] = False,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimizer steps [100].")] = None,
    group_size: Annotated[
        int | None,
        typer.Option("--group-size", "-g", help="Completions per prompt, compared (≥2) [8]."),
    ] = None,
    prompts_per_step: Annotated[
        int | None, typer.Option("--prompts-per-step", help="Prompts per step [2].")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "--lr", help="Peak learning rate [1e-5].")
    ] = None,
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", help="Linear warmup steps [steps/10].")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", "-t", help="Sampling temperature [0.9].")
    ] = None,
    kl: Annotated[
        float | None,
        typer.Option("--kl", help="KL coefficient β against the original model [0: none]."),
    ] = None,
    pass_k: Annotated[
        int | None,
        typer.Option(
            "--pass-k", help="Reward each group for its best of k completions [1: plain GRPO]."
        ),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Tokens per completion [128].")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for data and sampling [0].")] = (
        None
    ),
    checkpoint_every: Annotated[
        int | None, typer.Option("--checkpoint-every", help="Save a checkpoint every K steps [50].")
    ] = None,
    export: Annotated[
        str | None,
        typer.Option(
            "--export", help="GGUF type to export: q8_0 [default; f16 with --cold-start] or f16."
        ),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="answer [default]: reason, then 'The answer is X'; think: R1-Zero's, reasoning "
            "in <think>...</think> (format reward on the tags), exported with a template that "
            "declares them.",
        ),
    ] = None,
    cold_start: Annotated[
        int | None,
        number_option(
            "--cold-start",
            help="With --format think: first fine-tune on up to N of the model's own right "
            "solutions to training problems, rewrapped as <think>reasoning</think> answer "
            "(DeepSeek-R1's cold start) [0: none, R1-Zero].",
            low=0,
        ),
    ] = None,
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option(
            "--gradient-checkpointing/--no-gradient-checkpointing",
            help="Recompute activations to save memory (slower on CPU) [off].",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
) -> None:
    """Train with TRL's GRPOTrainer on rewards for accuracy, format and stopping, export to GGUF,
    check the export, and register it under --out. Ctrl-C saves a checkpoint; --resume goes on."""
    from reasoncli.train.grpo import prepare_training
    from reasoncli.train.settings import TrainRequest

    term = Terminal()
    job = prepare_training(
        TrainRequest(
            model=model,
            out=out,
            task=task,
            data=data,
            difficulty=difficulty,
            limit=limit,
            heldout=heldout,
            steps=steps,
            group_size=group_size,
            prompts_per_step=prompts_per_step,
            learning_rate=learning_rate,
            warmup_steps=warmup_steps,
            temperature=temperature,
            kl=kl,
            pass_k=pass_k,
            max_tokens=max_tokens,
            seed=seed,
            checkpoint_every=checkpoint_every,
            export=export,
            gradient_checkpointing=gradient_checkpointing,
            format=format_,
            cold_start=cold_start,
            run_dir=run_dir,
            resume=resume,
            force=force,
        )
    )
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
    difficulty: Annotated[int, typer.Option("--difficulty", help=_DIFFICULTY_HELP)] = 1,
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
