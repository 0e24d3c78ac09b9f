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
NoLog = Annotated[
    bool, typer.Option("--no-log", help="Keep this run out of `reason logs` (or REASON_NO_LOG=1).")
]
PANEL_REMOTE = "Remote server (OpenAI-compatible)"
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        help="auto (remote when a base URL or a remote models.yaml entry is given), local, openai.",
        rich_help_panel=PANEL_REMOTE,
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="REASON_BASE_URL",
        help="API root of llama-server, vLLM or SGLang, e.g. http://host:8000/v1.",
        rich_help_panel=PANEL_REMOTE,
    ),
]
ApiKeyFile = Annotated[
    str | None,
    typer.Option(
        "--api-key-file",
        envvar="REASON_API_KEY_FILE",
        help="File holding the API key (else $REASON_API_KEY; never a flag).",
        rich_help_panel=PANEL_REMOTE,
    ),
]
MaxConcurrency = Annotated[
    int | None,
    typer.Option(
        "--max-concurrency",
        min=1,
        help="Requests in flight at once [8].",
        rich_help_panel=PANEL_REMOTE,
    ),
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=0.1,
        help="Seconds to wait for a server's next chunk before retrying [60].",
        rich_help_panel=PANEL_REMOTE,
    ),
]


def model_request(params: dict[str, Any], model: str | None) -> ModelRequest:
    """The model flags every command shares, local and remote, from the command's parsed
    parameters (`ctx.params`), so each command does not repeat the list."""
    from reasoncli.remote.session import RemoteRequest

    remote = RemoteRequest(
        params["base_url"],
        model,
        params["api_key_file"],
        params["max_concurrency"],
        params["timeout"],
    )
    return ModelRequest(
        model,
        params["threads"],
        params["gpu_layers"],
        params["flash_attn"],
        params["verbose"],
        params["backend"],
        remote,
    )


PROGRESS_MODES = ("auto", "live", "plain", "none")


def _sampling_overrides(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _check_progress(progress: str) -> None:
    if progress not in PROGRESS_MODES:
        raise typer.BadParameter(
            f"{progress!r} is not one of {', '.join(PROGRESS_MODES)}", param_hint="--progress"
        )


PANEL_STRATEGY = "Strategy options"
PANEL_ENGINE = "Model and engine"
PANEL_OUTPUT = "Output"


def _opt(*names: str, help: str, panel: str = PANEL_STRATEGY, **kw: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


def ask(
    ctx: typer.Context,
    question: Question = None,
    branches: Annotated[int, _opt("--branches", "-n", help="Branches to sample.", min=1)] = 8,
    strategy: Annotated[str, _opt("--strategy", "-s", help="See `reason strategies`.")] = "vote",
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            help="Token budget per branch [512; auto with --budget-tokens: divided from it].",
            min=1,
        ),
    ] = None,
    model: ModelOpt = None,
    seed: Seed = 0,
    temperature: Temperature = None,
    top_p: TopP = None,
    top_k: TopK = None,
    min_p: MinP = None,
    expect: Expect = None,
    multiple_choice: Annotated[
        bool, _opt("--multiple-choice", help="Extract A-E letters as answers.")
    ] = False,
    early_stop: Annotated[
        bool, _opt("--early-stop", help="Stop sampling once the vote is settled.")
    ] = False,
    stop_rule: Annotated[
        str, _opt("--stop-rule", help="beta (Adaptive-Consistency) or esc (window agreement).")
    ] = "beta",
    esc_window: Annotated[int, _opt("--esc-window", help="ESC: answers that must agree.")] = 4,
    beta_threshold: Annotated[
        float, _opt("--beta-threshold", help="Beta rule: P(leader wins) needed to stop.")
    ] = 0.95,
    verifier: Annotated[
        str,
        _opt(
            "--verifier",
            help="confidence, self, a registry model or .gguf path; orm:NAME (whole solution) "
            "or prm:NAME (best-of-n scores each step, combined by --aggregate).",
        ),
    ] = "confidence",
    window: Annotated[int, _opt("--window", help="Confidence sliding window (tokens).")] = 128,
    keep_percent: Annotated[
        float, _opt("--keep-percent", help="weighted-vote: keep the top X% confident traces.")
    ] = 90.0,
    warmup: Annotated[
        int, _opt("--warmup", help="weighted-vote: branches that calibrate the stop threshold.")
    ] = 4,
    beam_width: Annotated[int, _opt("--beam-width", help="Beams kept per search step.")] = 4,
    step_tokens: Annotated[int, _opt("--step-tokens", help="Token budget of a search step.")] = 64,
    aggregate: Annotated[
        str, _opt("--aggregate", help="Step-score aggregation: last, min or prod.")
    ] = "last",
    pick: Annotated[
        str, _opt("--pick", help="best-of-n: best (top-scored branch) or weighted (score vote).")
    ] = "best",
    budget_tokens: Annotated[
        int | None, _opt("--budget-tokens", help="auto: total token budget for the question.")
    ] = None,
    pilot: Annotated[int, _opt("--pilot", help="auto: pilot branches to judge difficulty.")] = 4,
    rounds: Annotated[int, _opt("--rounds", help="revise: rounds of self-revision.")] = 3,
    json_out: Json = False,
    jsonl: Jsonl = False,
    quiet: Quiet = False,
    progress: Progress = "auto",
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = True,
    verbose: Verbose = False,
    backend: Backend = "auto",
    base_url: BaseUrl = None,
    api_key_file: ApiKeyFile = None,
    max_concurrency: MaxConcurrency = None,
    timeout: Timeout = None,
    no_log: NoLog = False,
) -> None:
    from reasoncli.strategies.base import DEFAULT_MAX_TOKENS, StrategyOptions

    _check_progress(progress)
    term = Terminal()
    options = StrategyOptions(
        branches=branches,
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        max_tokens_explicit=max_tokens is not None,
        seed=seed,
        expect=expect,
        multiple_choice=multiple_choice,
        early_stop=early_stop,
        stop_rule=stop_rule,
        esc_window=esc_window,
        beta_threshold=beta_threshold,
        verifier=verifier,
        window=window,
        keep_percent=keep_percent,
        warmup=warmup,
        beam_width=beam_width,
        step_tokens=step_tokens,
        aggregate=aggregate,
        pick=pick,
        budget_tokens=budget_tokens,
        pilot=pilot,
        rounds=rounds,
    )
    _run(
        strategy,
        term.read_question(question),
        options,
        term,
        model_request(ctx.params, model),
        OutputRequest(json_out, jsonl, quiet, progress),
        _sampling_overrides(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p),
        log=not no_log,
    )


def think(
    ctx: typer.Context,
    question: Question = None,
    strategy: Annotated[
        str, _opt("--strategy", "-s", help="think (budget forcing) or revise (self-revision).")
    ] = "think",
    max_tokens: Annotated[
        int,
        typer.Option("--max-tokens", help="Thinking budget; the answer is forced at it.", min=1),
    ] = 1024,
    min_tokens: Annotated[
        int, _opt("--min-tokens", help="Append 'Wait' if thinking ends before this.")
    ] = 0,
    max_waits: Annotated[int, _opt("--max-waits", help="At most this many 'Wait's.")] = 2,
    wait_text: Annotated[str, _opt("--wait-text", help="Text appended to continue.")] = "Wait",
    answer_tokens: Annotated[
        int, _opt("--answer-tokens", help="Tokens allowed for the answer after forcing.")
    ] = 128,
    rounds: Annotated[int, _opt("--rounds", help="revise: rounds of self-revision.")] = 3,
    final: Annotated[
        str, _opt("--final", help="revise: the 'last' round's answer or a 'vote' over rounds.")
    ] = "last",
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
    backend: Backend = "auto",
    base_url: BaseUrl = None,
    api_key_file: ApiKeyFile = None,
    max_concurrency: MaxConcurrency = None,
    timeout: Timeout = None,
    no_log: NoLog = False,
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
        rounds=rounds,
        final=final,
    )
    _run(
        strategy,
        term.read_question(question),
        options,
        term,
        model_request(ctx.params, model),
        OutputRequest(json_out, jsonl, quiet, progress),
        _sampling_overrides(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p),
        log=not no_log,
    )


def _run(
    strategy: str,
    question: str,
    options: Any,
    term: Terminal,
    model: ModelRequest,
    output: OutputRequest,
    overrides: dict[str, Any],
    log: bool = True,
) -> None:
    request = RunRequest(strategy, question, options, model, output, overrides, log)
    raise typer.Exit(execute(request, term))
