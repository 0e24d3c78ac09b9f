"""What the train commands are asked, declared once: each field of `TrainRequest` (`reason train
grpo`) and `VerifierRequest` (`reason train verifier`) carries its flag's names and help as an
`Opt` (`reasoncli.options.declare`), and `reasoncli.cli.flags.request_flags` makes the flags
from them; the field's default is the flag's.

This module imports nothing but the declarations, so `reason --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reasoncli.options.declare import Opt, Range, option

__all__ = ["DIFFICULTY_HELP", "TrainRequest", "VerifierRequest"]

DIFFICULTY_HELP = "Arithmetic difficulty: 1 add/subtract to 20, 2 one step with ×/÷, 3 two steps."


@dataclass
class TrainRequest:
    """Flags as given: None means "not given", so a resume can tell them from defaults (the
    defaults are `TrainSettings`'). In the order of `reason train grpo --help`."""

    model: str | None = option(
        None, Opt("Registry name or .gguf path (Llama architecture).", flags=("--model", "-m"))
    )
    task: str | None = option(
        None, Opt("Built-in problems: arithmetic [default], phrasings, gsm8k-steps or mixed.")
    )
    data: str | None = option(None, Opt("JSONL with answers, any `reason bench` format, instead."))
    difficulty: int | None = option(None, Opt(DIFFICULTY_HELP))
    limit: int | None = option(
        None, Opt("Train on the first N questions.", range=Range(1), cli_range=True)
    )
    heldout: int | None = option(
        None,
        Opt(
            "Keep N questions out of training, written to RUN_DIR/heldout.jsonl "
            "[100 for --task, 0 for --data].",
            range=Range(0),
            cli_range=True,
        ),
    )
    out: str | None = option(
        None, Opt("Registry name of the trained model [MODEL-grpo].", flags=("--out", "-o"))
    )
    run_dir: Path | None = option(None, Opt("Checkpoints, logs, export [runs/OUT]."))
    resume: Path | None = option(
        None, Opt("Continue the run in this directory from its checkpoint.")
    )
    force: bool = option(False, Opt("Replace an existing model name or run directory."))
    steps: int | None = option(None, Opt("Optimizer steps [100]."))
    group_size: int | None = option(
        None,
        Opt("Completions per prompt, compared (≥2) [8].", flags=("--group-size", "-g")),
    )
    prompts_per_step: int | None = option(None, Opt("Prompts per step [2]."))
    learning_rate: float | None = option(
        None, Opt("Peak learning rate [1e-5].", flags=("--learning-rate", "--lr"))
    )
    warmup_steps: int | None = option(None, Opt("Linear warmup steps [steps/10]."))
    temperature: float | None = option(
        None, Opt("Sampling temperature [0.9].", flags=("--temperature", "-t"))
    )
    kl: float | None = option(None, Opt("KL coefficient β against the original model [0: none]."))
    pass_k: int | None = option(
        None, Opt("Reward each group for its best of k completions [1: plain GRPO].")
    )
    max_tokens: int | None = option(None, Opt("Tokens per completion [128]."))
    seed: int | None = option(None, Opt("Seed for data and sampling [0]."))
    checkpoint_every: int | None = option(None, Opt("Save a checkpoint every K steps [50]."))
    export: str | None = option(
        None, Opt("GGUF type to export: q8_0 [default; f16 with --cold-start] or f16.")
    )
    format: str | None = option(
        None,
        Opt(
            "answer [default]: reason, then 'The answer is X'; think: R1-Zero's, reasoning "
            "in <think>...</think> (format reward on the tags), exported with a template that "
            "declares them."
        ),
    )
    cold_start: int | None = option(
        None,
        Opt(
            "With --format think: first fine-tune on up to N of the model's own right "
            "solutions to training problems, rewrapped as <think>reasoning</think> answer "
            "(DeepSeek-R1's cold start) [0: none, R1-Zero].",
            range=Range(0),
            cli_range=True,
        ),
    )
    gradient_checkpointing: bool | None = option(
        None,
        Opt(
            "Recompute activations to save memory (slower on CPU) [off].",
            flags=("--gradient-checkpointing/--no-gradient-checkpointing",),
        ),
    )


@dataclass(frozen=True)
class VerifierRequest:
    """`reason train verifier`'s flags, with their defaults; `rollouts` is its argument."""

    rollouts: tuple[Path, ...]
    kind: str = option("orm", Opt("orm: whole solutions; prm: every step prefix."))
    model: str | None = option(
        None, Opt("Base model to fine-tune [default model].", flags=("--model", "-m"))
    )
    policy: str | None = option(
        None, Opt("PRM: the model that completes step prefixes [rollouts'].")
    )
    out: str | None = option(None, Opt("Registry name [MODEL-KIND].", flags=("--out", "-o")))
    run_dir: Path | None = option(None, Opt("Labels, checkpoints, export [runs/OUT]."))
    force: bool = option(False, Opt("Replace an existing name."))
    steps: int = option(200, Opt("Optimizer steps."))
    batch_size: int = option(8, Opt("Examples per step."))
    learning_rate: float = option(2e-5, Opt("", flags=("--learning-rate", "--lr")))
    heldout: int = option(
        16, Opt("Questions kept out, by smallest hash.", range=Range(0), cli_range=True)
    )
    mc_completions: int = option(4, Opt("PRM: completions per step prefix."))
    mc_max_tokens: int = option(64, Opt("PRM: tokens per completion."))
    seed: int = option(0, Opt(""))
    checkpoint_every: int = option(50, Opt(""))
    export: str = option(
        "f16",
        Opt(
            "f16 [default] or q8_0. A verifier's fine-tuning moves weights by about one "
            "Q8_0 step, so Q8_0 can round it away (from an 8-bit base, nearly all of it)."
        ),
    )
    threads: int | None = option(None, Opt("llama.cpp threads."))
