"""`reason ask` (parallel thinking) and `reason think` (serial thinking)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from reasoncli.cli.io import Terminal
from reasoncli.cli.runner import ModelRequest, OutputRequest, RunRequest, execute

Question = Annotated[
    str | None, typer.Argument(help="The question; also read from stdin when piped.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Catalog name or alias, or a path to a .gguf file."),
]
MaxTokens = Annotated[int, typer.Option("--max-tokens", help="Token budget per branch.", min=1)]
Seed = Annotated[int, typer.Option("--seed", help="Base seed; branch i uses seed+i.")]
Temperature = Annotated[
    float | None, typer.Option("--temperature", "-t", help="Override the model's temperature.")
]
TopP = Annotated[float | None, typer.Option("--top-p", help="Override top-p.")]
TopK = Annotated[int | None, typer.Option("--top-k", help="Override top-k.")]
MinP = Annotated[float | None, typer.Option("--min-p", help="Override min-p.")]
Json = Annotated[bool, typer.Option("--json", help="Print the whole result as JSON on stdout.")]
Jsonl = Annotated[bool, typer.Option("--jsonl", help="Stream events as JSON lines on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No live view on stderr.")]
Progress = Annotated[
    str,
    typer.Option(
        "--progress",
        help="auto (live view when stderr is a TTY), live, plain (one line per event), none.",
    ),
]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads for llama.cpp.")]
GpuLayers = Annotated[
    int | None,
    typer.Option("--gpu-layers", help="Layers to offload; default all when a GPU backend exists."),
]
FlashAttn = Annotated[bool, typer.Option("--flash-attn/--no-flash-attn", help="Flash attention.")]
Expect = Annotated[
    str | None,
    typer.Option("--expect", help="The known answer: adds GRPO rewards and advantages per branch."),
]
Verbose = Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's own log.")]

PROGRESS_MODES = ("auto", "live", "plain", "none")


def _sampling_overrides(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _check_progress(progress: str) -> None:
    if progress not in PROGRESS_MODES:
        raise typer.BadParameter(
            f"{progress!r} is not one of {', '.join(PROGRESS_MODES)}", param_hint="--progress"
        )


def ask(
    question: Question = None,
    branches: Annotated[
        int, typer.Option("--branches", "-n", help="Parallel branches to sample.", min=1)
    ] = 8,
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="See `reason strategies`.")
    ] = "vote",
    max_tokens: MaxTokens = 512,
    model: ModelOpt = None,
    seed: Seed = 0,
    temperature: Temperature = None,
    top_p: TopP = None,
    top_k: TopK = None,
    min_p: MinP = None,
    expect: Expect = None,
    multiple_choice: Annotated[
        bool, typer.Option("--multiple-choice", help="Extract A-E letters as answers.")
    ] = False,
    json_out: Json = False,
    jsonl: Jsonl = False,
    quiet: Quiet = False,
    progress: Progress = "auto",
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = True,
    verbose: Verbose = False,
) -> None:
    from reasoncli.strategies.base import StrategyOptions

    _check_progress(progress)
    term = Terminal()
    options = StrategyOptions(
        branches=branches,
        max_tokens=max_tokens,
        seed=seed,
        expect=expect,
        multiple_choice=multiple_choice,
    )
    code = execute(
        RunRequest(
            strategy=strategy,
            question=term.read_question(question),
            options=options,
            model=ModelRequest(model, threads, gpu_layers, flash_attn, verbose),
            output=OutputRequest(json_out, jsonl, quiet, progress),
            sampling_overrides=_sampling_overrides(
                temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p
            ),
        ),
        term,
    )
    raise typer.Exit(code)


def think(
    question: Question = None,
    max_tokens: Annotated[
        int,
        typer.Option("--max-tokens", help="Thinking budget; the answer is forced at it.", min=1),
    ] = 1024,
    min_tokens: Annotated[
        int, typer.Option("--min-tokens", help="Append 'Wait' if thinking ends before this.")
    ] = 0,
    max_waits: Annotated[int, typer.Option("--max-waits", help="At most this many 'Wait's.")] = 2,
    wait_text: Annotated[str, typer.Option("--wait-text", help="Text appended to continue.")] = (
        "Wait"
    ),
    answer_tokens: Annotated[
        int, typer.Option("--answer-tokens", help="Tokens allowed for the answer after forcing.")
    ] = 128,
    model: ModelOpt = None,
    seed: Seed = 0,
    temperature: Temperature = None,
    top_p: TopP = None,
    top_k: TopK = None,
    min_p: MinP = None,
    expect: Expect = None,
    json_out: Json = False,
    jsonl: Jsonl = False,
    quiet: Quiet = False,
    progress: Progress = "auto",
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = True,
    verbose: Verbose = False,
) -> None:
    from reasoncli.strategies.base import StrategyOptions

    _check_progress(progress)
    term = Terminal()
    options = StrategyOptions(
        branches=1,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        max_waits=max_waits,
        wait_text=wait_text,
        answer_tokens=answer_tokens,
        seed=seed,
        expect=expect,
    )
    code = execute(
        RunRequest(
            strategy="think",
            question=term.read_question(question),
            options=options,
            model=ModelRequest(model, threads, gpu_layers, flash_attn, verbose),
            output=OutputRequest(json_out, jsonl, quiet, progress),
            sampling_overrides=_sampling_overrides(
                temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p
            ),
        ),
        term,
    )
    raise typer.Exit(code)
