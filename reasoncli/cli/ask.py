"""`reason ask` (parallel thinking) and `reason think` (serial thinking).

Their strategy flags, and the sampling and engine flags every run command shares, are made from
the option declarations (`reasoncli.options`, through `cli.flags`); what is written here are the
commands' own flags: the question, the strategy, the model, the output and the thinking budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from reasoncli.cli.completion import complete_model, complete_serial_strategy, complete_strategy
from reasoncli.cli.flags import (
    engine_flags,
    number_option,
    option_of,
    shared_flags,
    strategy_flags,
)
from reasoncli.cli.help import PANEL_OUTPUT, PANEL_RUN, PANEL_THINK, flag, option
from reasoncli.cli.io import Terminal
from reasoncli.cli.runner import ModelRequest, OutputRequest, RunRequest, execute
from reasoncli.option_checks import check_options
from reasoncli.options import EngineFlags, SamplingOverrides, StrategyOptions, declared

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
Temperature = Annotated[float | None, option_of("temperature")]
TopP = Annotated[float | None, option_of("top_p")]
TopK = Annotated[int | None, option_of("top_k")]
MinP = Annotated[float | None, option_of("min_p")]
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
    number_option(
        "--reasoning-budget",
        metavar="N",
        help="Thinking budget, llama.cpp's name: caps --max-tokens; 0 skips thinking, -1 none.",
        rich_help_panel=PANEL_THINK,
        low=-1,
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
Threads = Annotated[int | None, option_of("threads")]
GpuLayers = Annotated[int | None, option_of("gpu_layers")]
FlashAttn = Annotated[bool, option_of("flash_attn")]
NoLog = Annotated[
    bool,
    flag(
        "--no-log", help="Keep this run out of `reason logs` (or REASON_NO_LOG=1).", panel=PANEL_RUN
    ),
]
Verbose = Annotated[bool, option_of("verbose")]
Backend = Annotated[str, option_of("backend")]
BaseUrl = Annotated[str | None, option_of("base_url")]
ApiKeyFile = Annotated[str | None, option_of("api_key_file")]
MaxConcurrency = Annotated[int | None, option_of("max_concurrency")]
Timeout = Annotated[float | None, option_of("timeout")]

# The flags `model_request` checks: a command's strategy flags are checked by its strategy
# (a bench's `--branches 1,4,8` is a list, not a number).
MODEL_FLAGS = tuple(d.name for group in (SamplingOverrides, EngineFlags) for d in declared(group))


def model_request(params: dict[str, Any], model: str | None) -> ModelRequest:
    """The model flags every command shares, local and remote, from the command's parsed
    parameters (`ctx.params`), so each command does not repeat the list; values out of range
    (and --json with --jsonl) are refused here, before anything is read or loaded."""
    from reasoncli.api import model_request as request_for

    check_options(params, only=MODEL_FLAGS)
    flags = EngineFlags(**{d.name: params[d.name] for d in declared(EngineFlags)})
    return request_for(model, flags)


PROGRESS_MODES = ("auto", "live", "plain", "none")


def _check_progress(progress: str) -> None:
    if progress not in PROGRESS_MODES:
        raise typer.BadParameter(
            f"{progress!r} is not one of {', '.join(PROGRESS_MODES)}",
            param_hint="--progress",
        )


def _strategy(help: str, complete: Callable[..., Any]) -> Any:
    """The --strategy option of `ask` and `think`, which differ in what they offer."""
    return option(
        "--strategy", "-s", metavar="NAME", help=help, panel=PANEL_RUN, autocompletion=complete
    )


def _sampling_and_output(
    temperature: Temperature = None,
    top_p: TopP = None,
    top_k: TopK = None,
    min_p: MinP = None,
    json_out: Json = False,
    jsonl: Jsonl = False,
    quiet: Quiet = False,
    progress: Progress = "auto",
    hide_thinking: HideThinking = False,
) -> None:
    """The flags `ask` and `think` share (through `shared_flags`); `_run` reads them."""


@strategy_flags("ask")
@engine_flags
@shared_flags(_sampling_and_output, before="options")
def ask(
    ctx: typer.Context,
    question: Question = None,
    strategy: Annotated[
        str,
        _strategy(
            "How branches are combined: vote, weighted-vote, best-of-n, beam, dvts, auto "
            "(`reason strategies`).",
            complete_strategy,
        ),
    ] = "vote",
    model: ModelOpt = None,
    *,
    options: dict[str, Any],  # the strategy flags, from the declarations (cli.flags)
    no_log: NoLog = False,
    reasoning_budget: ReasoningBudget = None,
) -> None:
    options["max_tokens"] = thinking_cap(options["max_tokens"], reasoning_budget)
    _run(ctx, strategy, question, StrategyOptions.given(**options), reasoning_budget)


@strategy_flags(
    "think", max_tokens={"default": 1024, "help": "Thinking budget; the answer is forced at it."}
)
@engine_flags
@shared_flags(_sampling_and_output, before="reasoning_budget")
def think(
    ctx: typer.Context,
    question: Question = None,
    strategy: Annotated[
        str,
        _strategy("think (budget forcing) or revise (self-revision).", complete_serial_strategy),
    ] = "think",
    model: ModelOpt = None,
    *,
    options: dict[str, Any],  # the strategy flags, from the declarations (cli.flags)
    no_log: NoLog = False,
    reasoning_budget: ReasoningBudget = None,
) -> None:
    if reasoning_budget and reasoning_budget > 0:
        options["max_tokens"] = reasoning_budget
    _run(ctx, strategy, question, StrategyOptions.given(**options, branches=1), reasoning_budget)


def thinking_cap(max_tokens: int | None, reasoning_budget: int | None) -> int | None:
    """--max-tokens under --reasoning-budget N > 0 (0 and -1 leave it: no thinking, no cap)."""
    if reasoning_budget is None or reasoning_budget <= 0:
        return max_tokens
    return reasoning_budget if max_tokens is None else min(max_tokens, reasoning_budget)


def _run(
    ctx: typer.Context,
    strategy: str,
    question: str | None,
    options: StrategyOptions,
    reasoning_budget: int | None,
) -> None:
    """What `ask` and `think` share once each has made its options: the model, sampling and
    output flags (the same in both, read from `ctx.params`), the question, the run."""
    given = ctx.params
    _check_progress(given["progress"])
    model = model_request(given, given["model"])
    term = Terminal()
    output = OutputRequest(
        given["json_out"], given["jsonl"], given["quiet"], given["progress"], given["hide_thinking"]
    )
    overrides = SamplingOverrides(**{d.name: given[d.name] for d in declared(SamplingOverrides)})
    request = RunRequest(
        strategy,
        term.read_question(question),
        options,
        model,
        output,
        overrides.given(),
        log=not given["no_log"],
        skip_thinking=reasoning_budget == 0,
        thinking_budget=reasoning_budget if reasoning_budget != -1 else None,
    )
    raise typer.Exit(execute(request, term))
