"""Every option a run takes, declared once.

Each option is a dataclass field whose metadata (an `Opt`) says all there is to say about it:
its help text, CLI names and help panel, its range or choices, the strategies that read it and
the commands that show it. Three dataclasses hold them:

- `StrategyOptions`: what strategies read (branches, budgets, stop rules, verifiers, ...);
- `SamplingOverrides`: the sampling flags, each None to keep the model's models.yaml value;
- `EngineFlags`: how the model is loaded or reached (threads, GPU layers, a remote server).

Everything else is derived from the declarations, so adding an option to a strategy is one new
field below (plus the strategy's code that reads it):

- the flags of `reason ask`, `think`, `bench run` and `rollouts` (`reasoncli.cli.flags`), with
  the `(vote, auto)` labels that say which strategies read a flag;
- each strategy's `info.options` and so `reason strategies`;
- the checks of `option_checks.check_options`, the CLI's (exit 2) and `reason serve`'s (400);
- the `reason` field of `reason serve`'s requests and its OpenAPI schema.

This module imports no strategy, engine or CLI library, so `--help` stays fast.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from reasoncli.engine.sampling import Sampling

__all__ = [
    "AGGREGATES",
    "BACKENDS",
    "DEFAULT_MAX_TOKENS",
    "FINAL_MODES",
    "PICKS",
    "STOP_RULE_NAMES",
    "Declared",
    "EngineFlags",
    "Opt",
    "Range",
    "SamplingOverrides",
    "StrategyOptions",
    "declared",
    "option",
    "strategy_options",
]

DEFAULT_MAX_TOKENS = 512  # per-branch cap when --max-tokens is not given
PICKS = ("best", "weighted")  # best-of-n: the top-scored branch, or a score-weighted vote
FINAL_MODES = ("last", "vote")  # revise: the last round's answer, or a vote over the rounds
AGGREGATES = ("last", "min", "prod")  # how a path's step scores combine
STOP_RULE_NAMES = ("esc", "beta")  # ESC's window agreement, Adaptive-Consistency's Beta rule
BACKENDS = ("auto", "local", "openai")

# Panels of `--help`, by key (the titles are the CLI's: reasoncli.cli.help.PANELS).
RUN, SAMPLING, OUTPUT, ENGINE, REMOTE = "run", "sampling", "output", "engine", "remote"
VOTING, SEARCH, BUDGET, THINK, REVISE = "voting", "search", "budget", "think", "revise"

# A top bound of `reason serve` that is one of its limits (serve.request.Limits).
BRANCHES, TOKENS, REQUEST_TOKENS = "branches", "tokens", "request_tokens"


@dataclass(frozen=True)
class Range:
    """Where a number must lie: from `low`, up to `high`; `*_open` leaves the bound itself out."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""  # said after the bounds, e.g. "(0: greedy)"

    def ok(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    @property
    def requirement(self) -> str:
        """Completes "must be ...": "at least 1", "in (0, 1]", "more than 0 seconds"."""
        if self.high is None:
            text = f"{'more than' if self.low_open else 'at least'} {self.low:g}"
        else:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"in {left}{self.low:g}, {self.high:g}{right}"
        return f"{text} {self.note}" if self.note else text


@dataclass(frozen=True)
class Opt:
    """What an option is, beyond its name, type and default (those are the field's own)."""

    help: str
    flags: tuple[str, ...] = ()  # CLI names, the long one first; () is "--" + the dashed name
    metavar: str = "N"  # "" for a switch
    panel: str = RUN
    strategies: tuple[str, ...] | None = None  # the strategies that read it; None: all of them
    commands: tuple[str, ...] = ()  # "ask", "think": the commands with this flag
    bench: str | None = None  # the help of `reason bench run`'s flag; None: bench has none
    range: Range | None = None
    choices: tuple[str, ...] = ()
    serve_max: int | str | None = None  # a request's top value, or the name of a serve limit
    cli_range: bool = False  # click checks `range.low` itself (`x>=1` in --help)
    unset_default: bool = False  # the flag's default is None: "not given" (max_tokens_explicit)
    envvar: str | None = None

    @property
    def labelled(self) -> bool:
        """Whether `--help` names the strategies that read it: every panel but the run's."""
        return self.panel != RUN and self.strategies is not None


def option(default: Any, opt: Opt) -> Any:
    """A dataclass field declared with its `Opt`."""
    return field(default=default, metadata={"opt": opt})


@dataclass
class StrategyOptions:
    """Every knob a strategy may read; each field's `Opt` names the strategies that read it.

    Field names are the CLI flag names with dashes turned into underscores. Fields without an
    `Opt` (`max_tokens_explicit`, `sampling`) are set by the caller, never by a user.
    """

    branches: int = option(
        8,
        Opt(
            "Branches to sample.",
            flags=("--branches", "-n"),
            strategies=("vote", "weighted-vote", "best-of-n", "beam", "dvts", "auto"),
            commands=("ask",),
            range=Range(1),
            serve_max=BRANCHES,
            cli_range=True,
        ),
    )
    max_tokens: int = option(
        DEFAULT_MAX_TOKENS,
        Opt(
            "Token budget per branch [512; auto with --budget-tokens: divided from it].",
            commands=("ask", "think"),
            range=Range(1),
            serve_max=TOKENS,
            cli_range=True,
            unset_default=True,
        ),
    )
    # False when the user gave no --max-tokens: a strategy that plans a --budget-tokens may then
    # choose the per-branch cap itself (`auto` does).
    max_tokens_explicit: bool = True
    seed: int = option(
        0,
        Opt("Base seed; branch i uses seed+i.", commands=("ask", "think"), serve_max=2**31 - 1),
    )
    sampling: Sampling | None = None  # None: the model's defaults from models.yaml
    expect: str | None = option(
        None,
        Opt(
            "The known answer: adds GRPO rewards and advantages per branch.",
            metavar="ANSWER",
            commands=("ask", "think"),
        ),
    )
    multiple_choice: bool = option(
        False, Opt("Extract A-E letters as answers.", metavar="", commands=("ask",))
    )
    # early stopping for vote-based strategies
    early_stop: bool = option(
        False,
        Opt(
            "Stop sampling once the vote is settled.",
            metavar="",
            panel=VOTING,
            strategies=("vote", "weighted-vote"),
            commands=("ask",),
        ),
    )
    stop_rule: str = option(
        "beta",
        Opt(
            "beta (Adaptive-Consistency) or esc (window agreement).",
            metavar="beta|esc",
            panel=VOTING,
            strategies=("vote", "weighted-vote", "auto"),
            commands=("ask",),
            choices=STOP_RULE_NAMES,
        ),
    )
    esc_window: int = option(
        4,
        Opt(
            "ESC: answers that must agree.",
            panel=VOTING,
            strategies=("vote", "weighted-vote", "auto"),
            commands=("ask",),
            range=Range(1),
            serve_max=1024,
        ),
    )
    beta_threshold: float = option(
        0.95,
        Opt(
            "Beta rule: P(leader wins) needed to stop.",
            metavar="P",
            panel=VOTING,
            strategies=("vote", "weighted-vote", "auto"),
            commands=("ask",),
            range=Range(0.5, 1, low_open=True),
        ),
    )
    # confidence (DeepConf)
    window: int = option(
        128,
        Opt(
            "Confidence sliding window (tokens).",
            panel=VOTING,
            strategies=("weighted-vote", "best-of-n"),
            commands=("ask",),
            range=Range(1),
            serve_max=TOKENS,
        ),
    )
    keep_percent: float = option(
        90.0,
        Opt(
            "Keep the top X% most confident traces.",
            metavar="X",
            panel=VOTING,
            strategies=("weighted-vote",),
            commands=("ask",),
            range=Range(0, 100, low_open=True),
        ),
    )
    warmup: int = option(
        4,
        Opt(
            "Branches that calibrate the stop threshold.",
            panel=VOTING,
            strategies=("weighted-vote",),
            commands=("ask",),
            range=Range(0),
            serve_max=BRANCHES,
        ),
    )
    top_logprobs: int = option(
        5,
        Opt(
            "Top-k log-probabilities a token's confidence is computed from.",
            panel=VOTING,
            strategies=("weighted-vote", "best-of-n", "beam", "dvts"),
            range=Range(1, 100),
            serve_max=20,
        ),
    )
    # verifiers and search
    verifier: str = option(
        "confidence",
        Opt(
            "confidence, self, a registry model or .gguf path; orm:NAME (whole solution) or "
            "prm:NAME (scores each step, combined by --aggregate).",
            metavar="NAME",
            panel=SEARCH,
            strategies=("best-of-n", "beam", "dvts"),
            commands=("ask",),
            bench="best-of-n, beam, dvts: confidence [default], self, a model, orm:NAME or "
            "prm:NAME (as in `reason ask`).",
        ),
    )
    aggregate: str = option(
        "last",
        Opt(
            "Step-score aggregation: last, min or prod.",
            metavar="last|min|prod",
            panel=SEARCH,
            strategies=("best-of-n", "beam", "dvts"),
            commands=("ask",),
            bench="PRM step-score aggregation: last [default], min, prod.",
            choices=AGGREGATES,
        ),
    )
    pick: str = option(
        "best",
        Opt(
            "best (top-scored branch) or weighted (score-weighted vote).",
            metavar="best|weighted",
            panel=SEARCH,
            strategies=("best-of-n",),
            commands=("ask",),
            bench="best-of-n: best [default] branch or weighted vote.",
            choices=PICKS,
        ),
    )
    beam_width: int = option(
        4,
        Opt(
            "Beams kept per search step.",
            panel=SEARCH,
            strategies=("beam", "dvts"),
            commands=("ask",),
            bench="beam, dvts: beams kept per step [4].",
            range=Range(1),
            serve_max=BRANCHES,
        ),
    )
    step_tokens: int = option(
        64,
        Opt(
            "Token budget of a search step.",
            panel=SEARCH,
            strategies=("beam", "dvts"),
            commands=("ask",),
            bench="beam, dvts: token budget of a step [64].",
            range=Range(1),
            serve_max=TOKENS,
        ),
    )
    # adaptive
    budget_tokens: int | None = option(
        None,
        Opt(
            "Total token budget for the question.",
            panel=BUDGET,
            strategies=("auto",),
            commands=("ask",),
            range=Range(1),
            serve_max=REQUEST_TOKENS,
        ),
    )
    pilot: int = option(
        4,
        Opt(
            "Pilot branches that judge difficulty.",
            panel=BUDGET,
            strategies=("auto",),
            commands=("ask",),
            range=Range(1),
            serve_max=BRANCHES,
        ),
    )

    # serial: budget forcing (think) and self-revision (revise)
    min_tokens: int = option(
        0,
        Opt(
            "Append 'Wait' if thinking ends before this.",
            panel=THINK,
            strategies=("think",),
            commands=("think",),
            range=Range(0),
            serve_max=TOKENS,
            bench="think: append 'Wait' if thinking ends before this many tokens [0].",
        ),
    )
    max_waits: int = option(
        2,
        Opt(
            "At most this many 'Wait's.",
            panel=THINK,
            strategies=("think",),
            commands=("think",),
            range=Range(0),
            serve_max=64,
        ),
    )
    wait_text: str = option(
        "Wait",
        Opt(
            "Text appended to continue.",
            metavar="TEXT",
            panel=THINK,
            strategies=("think",),
            commands=("think",),
        ),
    )
    answer_tokens: int = option(
        128,
        Opt(
            "Tokens allowed for the answer after forcing.",
            panel=THINK,
            strategies=("think",),
            commands=("think",),
            range=Range(1),
            serve_max=TOKENS,
        ),
    )
    answer_text: str = option(
        "Final Answer:",
        Opt(
            "Text appended, after a blank line, to force the answer.",
            metavar="TEXT",
            panel=THINK,
            strategies=("think",),
            commands=("think",),
        ),
    )
    rounds: int = option(
        3,
        Opt(
            "Rounds of self-revision.",
            panel=REVISE,
            strategies=("revise",),
            commands=("ask", "think"),
            range=Range(1),
            serve_max=16,
        ),
    )
    final: str = option(
        "last",
        Opt(
            "The 'last' round's answer or a 'vote' over rounds.",
            metavar="last|vote",
            panel=REVISE,
            strategies=("revise",),
            commands=("think",),
            choices=FINAL_MODES,
        ),
    )

    @classmethod
    def given(cls, **values: Any) -> StrategyOptions:
        """Options from what a caller gave: a None keeps the default (a None default stays
        None), and `max_tokens_explicit` says whether `max_tokens` was among them."""
        defaults = {f.name: f.default for f in fields(cls)}
        unknown = sorted(set(values) - set(defaults))
        if unknown:
            from reasoncli.errors import UsageError

            raise UsageError(f"unknown option {unknown[0]!r}; known: {', '.join(defaults)}")
        kept = {k: v for k, v in values.items() if v is not None}
        kept.setdefault("max_tokens_explicit", "max_tokens" in kept)
        return cls(**kept)

    def check(self) -> None:
        """Validate every declared value and what no one value shows; raises UsageError
        (exit 2). Each strategy's `check` adds the rules of its own combinations."""
        from reasoncli.errors import UsageError
        from reasoncli.option_checks import check_options

        check_options({d.name: getattr(self, d.name) for d in declared(StrategyOptions)})
        if self.min_tokens > self.max_tokens:
            raise UsageError(
                f"--min-tokens ({self.min_tokens}) is larger than --max-tokens ({self.max_tokens})"
            )


@dataclass(frozen=True)
class SamplingOverrides:
    """The sampling flags of every run; None keeps the value of the model's models.yaml entry."""

    temperature: float | None = option(
        None,
        Opt(
            "Temperature; 0 is greedy.",
            flags=("--temperature", "-t"),
            metavar="T",
            panel=SAMPLING,
            commands=("ask", "think"),
            range=Range(0, note="(0: greedy)"),
        ),
    )
    top_p: float | None = option(
        None,
        Opt(
            "Nucleus sampling, in (0, 1].",
            metavar="P",
            panel=SAMPLING,
            commands=("ask", "think"),
            range=Range(0, 1, low_open=True),
        ),
    )
    top_k: int | None = option(
        None,
        Opt(
            "Top-k; 0 turns it off.",
            metavar="K",
            panel=SAMPLING,
            commands=("ask", "think"),
            range=Range(0, note="(0: off)"),
            serve_max=1 << 20,
        ),
    )
    min_p: float | None = option(
        None,
        Opt(
            "Min-p, in [0, 1].",
            metavar="P",
            panel=SAMPLING,
            commands=("ask", "think"),
            range=Range(0, 1),
        ),
    )

    def given(self) -> dict[str, Any]:
        """The overrides that were given, for `dataclasses.replace(session.sampling, ...)`."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class EngineFlags:
    """How a run's model is loaded (llama.cpp) or reached (an OpenAI-compatible server)."""

    threads: int | None = option(
        None,
        Opt("CPU threads for llama.cpp.", panel=ENGINE, range=Range(1)),
    )
    gpu_layers: int | None = option(
        None,
        Opt(
            "Layers to offload (0: CPU only, -1: all); default all when a GPU backend exists.",
            panel=ENGINE,
            range=Range(-1, note="(-1: every layer)"),
        ),
    )
    flash_attn: bool = option(
        True,
        Opt("Flash attention.", flags=("--flash-attn/--no-flash-attn",), metavar="", panel=ENGINE),
    )
    verbose: bool = option(False, Opt("Show llama.cpp's own log.", metavar="", panel=ENGINE))
    backend: str = option(
        "auto",
        Opt(
            "auto (remote when a base URL or a remote models.yaml entry is given), local, openai.",
            metavar="auto|local|openai",
            panel=REMOTE,
            choices=BACKENDS,
        ),
    )
    base_url: str | None = option(
        None,
        Opt(
            "API root of llama-server, vLLM or SGLang, e.g. http://host:8000/v1.",
            metavar="URL",
            panel=REMOTE,
            envvar="REASON_BASE_URL",
        ),
    )
    api_key_file: str | None = option(
        None,
        Opt(
            "File holding the API key (else $REASON_API_KEY; never a flag).",
            metavar="FILE",
            panel=REMOTE,
            envvar="REASON_API_KEY_FILE",
        ),
    )
    max_concurrency: int | None = option(
        None, Opt("Requests in flight at once [8].", panel=REMOTE, range=Range(1))
    )
    timeout: float | None = option(
        None,
        Opt(
            "Seconds to wait for a server's next chunk before retrying [60].",
            metavar="SECONDS",
            panel=REMOTE,
            range=Range(0, low_open=True, note="seconds"),
        ),
    )


@dataclass(frozen=True)
class Declared:
    """One declared option: its field's name, type (without None), default, and `Opt`."""

    name: str
    type: type
    optional: bool  # None is a value it takes
    default: Any
    opt: Opt

    @property
    def flag(self) -> str:
        return self.opt.flags[0].split("/")[0] if self.opt.flags else self.cli_name

    @property
    def cli_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        return self.opt.flags or (self.cli_name,)


_CACHE: dict[type, tuple[Declared, ...]] = {}


def declared(cls: type) -> tuple[Declared, ...]:
    """The declared options of `StrategyOptions`, `SamplingOverrides` or `EngineFlags`, in
    declaration order (the order of `--help` and `reason strategies`)."""
    if cls not in _CACHE:
        hints = typing.get_type_hints(cls)
        out = []
        for f in fields(cls):
            opt = f.metadata.get("opt")
            if opt is None:
                continue
            args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
            kind = args[0] if args else hints[f.name]
            default = None if f.default is MISSING else f.default
            optional = type(None) in typing.get_args(hints[f.name])
            out.append(Declared(f.name, kind, optional, default, opt))
        _CACHE[cls] = tuple(out)
    return _CACHE[cls]


def every_option() -> dict[str, Declared]:
    """Every declared option by name: the strategies', the sampling flags, the engine's."""
    return {
        d.name: d
        for cls in (StrategyOptions, SamplingOverrides, EngineFlags)
        for d in declared(cls)
    }


def strategy_options(strategy: str) -> tuple[str, ...]:
    """The options `strategy` reads that a user can set with a flag (its `info.options`)."""
    return tuple(
        d.name
        for d in declared(StrategyOptions)
        if d.opt.commands and (d.opt.strategies is None or strategy in d.opt.strategies)
    )


def labelled_options() -> dict[str, tuple[str, ...]]:
    """Options only some strategies read -> those strategies, as `--help` labels them."""
    return {
        d.name: d.opt.strategies
        for d in declared(StrategyOptions)
        if d.opt.labelled and d.opt.strategies is not None and d.opt.commands
    }
