"""`reason ask` (parallel thinking) and `reason think` (serial thinking)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from reasoncli.cli.completion import complete_model, complete_serial_strategy, complete_strategy
from reasoncli.cli.help import (
    PANEL_BUDGET,
    PANEL_ENGINE,
    PANEL_OUTPUT,
    PANEL_REMOTE,
    PANEL_REVISE,
    PANEL_RUN,
    PANEL_SAMPLING,
    PANEL_SEARCH,
    PANEL_THINK,
    PANEL_VOTING,
    flag,
    option,
    strategy_option,
)
from reasoncli.cli.io import Terminal
from reasoncli.cli.runner import ModelRequest, OutputRequest, RunRequest, execute
from reasoncli.option_checks import check_options

Question = Annotated[
    str | None,
    typer.Argument(help="The question; also read from stdin when piped.", metavar="QUESTION"),
]
ModelOpt = Annotated[
    str | None,
    option(
        "--model",
        "-m",
        help="Registry name or alias (`reason models list`), or a path to a .gguf file.",
        panel=PANEL_RUN,
        metavar="NAME",
        autocompletion=complete_model,
    ),
]
Seed = Annotated[
    int, option("--seed", metavar="N", help="Base seed; branch i uses seed+i.", panel=PANEL_RUN)
]
Temperature = Annotated[
    float | None,
    option(
        "--temperature", "-t", metavar="T", help="Temperature; 0 is greedy.", panel=PANEL_SAMPLING
    ),
]
TopP = Annotated[
    float | None,
    option("--top-p", metavar="P", help="Nucleus sampling, in (0, 1].", panel=PANEL_SAMPLING),
]
TopK = Annotated[
    int | None, option("--top-k", metavar="K", help="Top-k; 0 turns it off.", panel=PANEL_SAMPLING)
]
MinP = Annotated[
    float | None, option("--min-p", metavar="P", help="Min-p, in [0, 1].", panel=PANEL_SAMPLING)
]
Json = Annotated[
    bool, flag("--json", help="Print the whole result as JSON on stdout.", panel=PANEL_OUTPUT)
]
Jsonl = Annotated[
    bool, flag("--jsonl", help="Stream events as JSON lines on stdout.", panel=PANEL_OUTPUT)
]
Quiet = Annotated[bool, flag("--quiet", "-q", help="No live view on stderr.", panel=PANEL_OUTPUT)]
HideThinking = Annotated[
    bool,
    flag(
        "--hide-thinking",
        help="Keep the <think> trace out of the live view and --jsonl (--json keeps it apart).",
        panel=PANEL_OUTPUT,
    ),
]
ReasoningBudget = Annotated[
    int | None,
    option(
        "--reasoning-budget",
        metavar="N",
        help="Thinking budget, llama.cpp's name: caps --max-tokens; 0 skips thinking, -1 none.",
        panel=PANEL_THINK,
        min=-1,
    ),
]
Progress = Annotated[
    str,
    option(
        "--progress",
        metavar="MODE",
        help="auto (live view when stderr is a TTY), live, plain (one line per event), none.",
        panel=PANEL_OUTPUT,
    ),
]
Threads = Annotated[
    int | None,
    option("--threads", metavar="N", help="CPU threads for llama.cpp.", panel=PANEL_ENGINE),
]
GpuLayers = Annotated[
    int | None,
    option(
        "--gpu-layers",
        metavar="N",
        help="Layers to offload (0: CPU only, -1: all); default all when a GPU backend exists.",
        panel=PANEL_ENGINE,
    ),
]
FlashAttn = Annotated[
    bool, flag("--flash-attn/--no-flash-attn", help="Flash attention.", panel=PANEL_ENGINE)
]
Expect = Annotated[
    str | None,
    option(
        "--expect",
        metavar="ANSWER",
        help="The known answer: adds GRPO rewards and advantages per branch.",
        panel=PANEL_RUN,
    ),
]
Verbose = Annotated[bool, flag("--verbose", help="Show llama.cpp's own log.", panel=PANEL_ENGINE)]
NoLog = Annotated[
    bool,
    flag(
        "--no-log", help="Keep this run out of `reason logs` (or REASON_NO_LOG=1).", panel=PANEL_RUN
    ),
]
Backend = Annotated[
    str,
    option(
        "--backend",
        metavar="auto|local|openai",
        help="auto (remote when a base URL or a remote models.yaml entry is given), local, openai.",
        panel=PANEL_REMOTE,
    ),
]
BaseUrl = Annotated[
    str | None,
    option(
        "--base-url",
        metavar="URL",
        envvar="REASON_BASE_URL",
        help="API root of llama-server, vLLM or SGLang, e.g. http://host:8000/v1.",
        panel=PANEL_REMOTE,
    ),
]
ApiKeyFile = Annotated[
    str | None,
    option(
        "--api-key-file",
        metavar="FILE",
        envvar="REASON_API_KEY_FILE",
        help="File holding the API key (else $REASON_API_KEY; never a flag).",
        panel=PANEL_REMOTE,
    ),
]
MaxConcurrency = Annotated[
    int | None,
    option(
        "--max-concurrency", metavar="N", help="Requests in flight at once [8].", panel=PANEL_REMOTE
    ),
]
Timeout = Annotated[
    float | None,
    option(
        "--timeout",
        metavar="SECONDS",
        help="Seconds to wait for a server's next chunk before retrying [60].",
        panel=PANEL_REMOTE,
    ),
]


def model_request(params: dict[str, Any], model: str | None) -> ModelRequest:
    """The model flags every command shares, local and remote, from the command's parsed
    parameters (`ctx.params`), so each command does not repeat the list; values out of range
    (and --json with --jsonl) are refused here, before anything is read or loaded."""
    from reasoncli.remote.session import RemoteRequest

    check_options(params)

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
            f"{progress!r} is not one of {', '.join(PROGRESS_MODES)}",
            param_hint="--progress",
        )


def ask(
    ctx: typer.Context,
    question: Question = None,
    strategy: Annotated[
        str,
        option(
            "--strategy",
            "-s",
            metavar="NAME",
            help="How branches are combined: vote, weighted-vote, best-of-n, beam, dvts, auto "
            "(`reason strategies`).",
            panel=PANEL_RUN,
            autocompletion=complete_strategy,
        ),
    ] = "vote",
    branches: Annotated[
        int,
        option("--branches", "-n", metavar="N", help="Branches to sample.", panel=PANEL_RUN, min=1),
    ] = 8,
    max_tokens: Annotated[
        int | None,
        option(
            "--max-tokens",
            metavar="N",
            help="Token budget per branch [512; auto with --budget-tokens: divided from it].",
            panel=PANEL_RUN,
            min=1,
        ),
    ] = None,
    model: ModelOpt = None,
    seed: Seed = 0,
    expect: Expect = None,
    multiple_choice: Annotated[
        bool, flag("--multiple-choice", help="Extract A-E letters as answers.", panel=PANEL_RUN)
    ] = False,
    no_log: NoLog = False,
    temperature: Temperature = None,
    top_p: TopP = None,
    top_k: TopK = None,
    min_p: MinP = None,
    json_out: Json = False,
    jsonl: Jsonl = False,
    quiet: Quiet = False,
    progress: Progress = "auto",
    early_stop: Annotated[
        bool,
        strategy_option(
            "early_stop",
            "--early-stop",
            help="Stop sampling once the vote is settled.",
            panel=PANEL_VOTING,
            metavar="",
        ),
    ] = False,
    stop_rule: Annotated[
        str,
        strategy_option(
            "stop_rule",
            "--stop-rule",
            metavar="beta|esc",
            help="beta (Adaptive-Consistency) or esc (window agreement).",
            panel=PANEL_VOTING,
        ),
    ] = "beta",
    esc_window: Annotated[
        int,
        strategy_option(
            "esc_window",
            "--esc-window",
            metavar="N",
            help="ESC: answers that must agree.",
            panel=PANEL_VOTING,
        ),
    ] = 4,
    beta_threshold: Annotated[
        float,
        strategy_option(
            "beta_threshold",
            "--beta-threshold",
            metavar="P",
            help="Beta rule: P(leader wins) needed to stop.",
            panel=PANEL_VOTING,
        ),
    ] = 0.95,
    window: Annotated[
        int,
        strategy_option(
            "window",
            "--window",
            metavar="N",
            help="Confidence sliding window (tokens).",
            panel=PANEL_VOTING,
        ),
    ] = 128,
    keep_percent: Annotated[
        float,
        strategy_option(
            "keep_percent",
            "--keep-percent",
            metavar="X",
            help="Keep the top X% most confident traces.",
            panel=PANEL_VOTING,
        ),
    ] = 90.0,
    warmup: Annotated[
        int,
        strategy_option(
            "warmup",
            "--warmup",
            metavar="N",
            help="Branches that calibrate the stop threshold.",
            panel=PANEL_VOTING,
        ),
    ] = 4,
    verifier: Annotated[
        str,
        strategy_option(
            "verifier",
            "--verifier",
            metavar="NAME",
            help="confidence, self, a registry model or .gguf path; orm:NAME (whole solution) "
            "or prm:NAME (scores each step, combined by --aggregate).",
            panel=PANEL_SEARCH,
        ),
    ] = "confidence",
    aggregate: Annotated[
        str,
        strategy_option(
            "aggregate",
            "--aggregate",
            metavar="last|min|prod",
            help="Step-score aggregation: last, min or prod.",
            panel=PANEL_SEARCH,
        ),
    ] = "last",
    pick: Annotated[
        str,
        strategy_option(
            "pick",
            "--pick",
            metavar="best|weighted",
            help="best (top-scored branch) or weighted (score-weighted vote).",
            panel=PANEL_SEARCH,
        ),
    ] = "best",
    beam_width: Annotated[
        int,
        strategy_option(
            "beam_width",
            "--beam-width",
            metavar="N",
            help="Beams kept per search step.",
            panel=PANEL_SEARCH,
        ),
    ] = 4,
    step_tokens: Annotated[
        int,
        strategy_option(
            "step_tokens",
            "--step-tokens",
            metavar="N",
            help="Token budget of a search step.",
            panel=PANEL_SEARCH,
        ),
    ] = 64,
    budget_tokens: Annotated[
        int | None,
        strategy_option(
            "budget_tokens",
            "--budget-tokens",
            metavar="N",
            help="Total token budget for the question.",
            panel=PANEL_BUDGET,
        ),
    ] = None,
    pilot: Annotated[
        int,
        strategy_option(
            "pilot",
            "--pilot",
            metavar="N",
            help="Pilot branches that judge difficulty.",
            panel=PANEL_BUDGET,
        ),
    ] = 4,
    rounds: Annotated[
        int,
        strategy_option(
            "rounds", "--rounds", metavar="N", help="Rounds of self-revision.", panel=PANEL_REVISE
        ),
    ] = 3,
    hide_thinking: HideThinking = False,
    reasoning_budget: ReasoningBudget = None,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = True,
    verbose: Verbose = False,
    backend: Backend = "auto",
    base_url: BaseUrl = None,
    api_key_file: ApiKeyFile = None,
    max_concurrency: MaxConcurrency = None,
    timeout: Timeout = None,
) -> None:
    from reasoncli.options import DEFAULT_MAX_TOKENS, StrategyOptions

    _check_progress(progress)
    model_flags = model_request(ctx.params, model)
    term = Terminal()
    max_tokens = thinking_cap(max_tokens, reasoning_budget)
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
        model_flags,
        OutputRequest(json_out, jsonl, quiet, progress, hide_thinking),
        _sampling_overrides(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p),
        log=not no_log,
        skip_thinking=reasoning_budget == 0,
        thinking_budget=reasoning_budget if reasoning_budget != -1 else None,
    )


def think(
    ctx: typer.Context,
    question: Question = None,
    strategy: Annotated[
        str,
        option(
            "--strategy",
            "-s",
            metavar="NAME",
            help="think (budget forcing) or revise (self-revision).",
            panel=PANEL_RUN,
            autocompletion=complete_serial_strategy,
        ),
    ] = "think",
    max_tokens: Annotated[
        int,
        option(
            "--max-tokens",
            metavar="N",
            help="Thinking budget; the answer is forced at it.",
            panel=PANEL_RUN,
            min=1,
        ),
    ] = 1024,
    model: ModelOpt = None,
    seed: Seed = 0,
    expect: Expect = None,
    no_log: NoLog = False,
    min_tokens: Annotated[
        int,
        strategy_option(
            "min_tokens",
            "--min-tokens",
            metavar="N",
            help="Append 'Wait' if thinking ends before this.",
            panel=PANEL_THINK,
        ),
    ] = 0,
    max_waits: Annotated[
        int,
        strategy_option(
            "max_waits",
            "--max-waits",
            metavar="N",
            help="At most this many 'Wait's.",
            panel=PANEL_THINK,
        ),
    ] = 2,
    wait_text: Annotated[
        str,
        strategy_option(
            "wait_text",
            "--wait-text",
            metavar="TEXT",
            help="Text appended to continue.",
            panel=PANEL_THINK,
        ),
    ] = "Wait",
    answer_tokens: Annotated[
        int,
        strategy_option(
            "answer_tokens",
            "--answer-tokens",
            metavar="N",
            help="Tokens allowed for the answer after forcing.",
            panel=PANEL_THINK,
        ),
    ] = 128,
    rounds: Annotated[
        int,
        strategy_option(
            "rounds", "--rounds", metavar="N", help="Rounds of self-revision.", panel=PANEL_REVISE
        ),
    ] = 3,
    final: Annotated[
        str,
        strategy_option(
            "final",
            "--final",
            metavar="last|vote",
            help="The 'last' round's answer or a 'vote' over rounds.",
            panel=PANEL_REVISE,
        ),
    ] = "last",
    temperature: Temperature = None,
    top_p: TopP = None,
    top_k: TopK = None,
    min_p: MinP = None,
    json_out: Json = False,
    jsonl: Jsonl = False,
    quiet: Quiet = False,
    progress: Progress = "auto",
    hide_thinking: HideThinking = False,
    reasoning_budget: ReasoningBudget = None,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = True,
    verbose: Verbose = False,
    backend: Backend = "auto",
    base_url: BaseUrl = None,
    api_key_file: ApiKeyFile = None,
    max_concurrency: MaxConcurrency = None,
    timeout: Timeout = None,
) -> None:
    from reasoncli.options import StrategyOptions

    _check_progress(progress)
    model_flags = model_request(ctx.params, model)
    term = Terminal()
    options = StrategyOptions(
        branches=1,
        max_tokens=reasoning_budget if reasoning_budget and reasoning_budget > 0 else max_tokens,
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
        model_flags,
        OutputRequest(json_out, jsonl, quiet, progress, hide_thinking),
        _sampling_overrides(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p),
        log=not no_log,
        skip_thinking=reasoning_budget == 0,
        thinking_budget=reasoning_budget if reasoning_budget != -1 else None,
    )


def thinking_cap(max_tokens: int | None, reasoning_budget: int | None) -> int | None:
    """--max-tokens under --reasoning-budget N > 0 (0 and -1 leave it: no thinking, no cap)."""
    if reasoning_budget is None or reasoning_budget <= 0:
        return max_tokens
    return reasoning_budget if max_tokens is None else min(max_tokens, reasoning_budget)


def _run(
    strategy: str,
    question: str,
    options: Any,
    term: Terminal,
    model: ModelRequest,
    output: OutputRequest,
    overrides: dict[str, Any],
    log: bool = True,
    skip_thinking: bool = False,
    thinking_budget: int | None = None,
) -> None:
    request = RunRequest(
        strategy, question, options, model, output, overrides, log,
        skip_thinking=skip_thinking, thinking_budget=thinking_budget,
    )  # fmt: skip
    raise typer.Exit(execute(request, term))
