"""`StrategyOptions`: every option a strategy reads, each declared once with its `Opt`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from reasoncli.engine.sampling import Sampling
from reasoncli.options.declare import (
    BRANCHES,
    BUDGET,
    REQUEST_TOKENS,
    REVISE,
    SEARCH,
    THINK,
    TOKENS,
    VOTING,
    Opt,
    Range,
    declared,
    option,
)

DEFAULT_MAX_TOKENS = 512  # per-branch cap when --max-tokens is not given
PICKS = ("best", "weighted")  # best-of-n: the top-scored branch, or a score-weighted vote
FINAL_MODES = ("last", "vote")  # revise: the last round's answer, or a vote over the rounds
AGGREGATES = ("last", "min", "prod")  # how a path's step scores combine
STOP_RULE_NAMES = ("esc", "beta")  # ESC's window agreement, Adaptive-Consistency's Beta rule


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
