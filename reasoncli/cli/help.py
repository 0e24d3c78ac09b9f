"""What `--help` shows: the option panels and the examples.

`--help` must stay fast, so nothing here imports the strategies: which strategies read an option,
shown as a label in its help, is declared with the option (`reasoncli.options`).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand

from reasoncli import options

PANEL_RUN = "Question and strategy"
PANEL_SAMPLING = "Sampling (defaults: the model's models.yaml entry)"
PANEL_OUTPUT = "Output"
PANEL_ENGINE = "Local engine (llama.cpp)"
PANEL_REMOTE = "Remote server (OpenAI-compatible)"
PANEL_VOTING = "Voting and early stopping"
PANEL_SEARCH = "Verifiers and search"
PANEL_BUDGET = "Budgets"
PANEL_THINK = "Thinking budget"
PANEL_REVISE = "Self-revision (--strategy revise)"

PANELS = {
    options.RUN: PANEL_RUN,
    options.SAMPLING: PANEL_SAMPLING,
    options.OUTPUT: PANEL_OUTPUT,
    options.ENGINE: PANEL_ENGINE,
    options.REMOTE: PANEL_REMOTE,
    options.VOTING: PANEL_VOTING,
    options.SEARCH: PANEL_SEARCH,
    options.BUDGET: PANEL_BUDGET,
    options.THINK: PANEL_THINK,
    options.REVISE: PANEL_REVISE,
}
"""The title of each panel key an option declares (`reasoncli.options.Opt.panel`)."""


def option(*names: str, help: str, panel: str, **kw: Any) -> Any:
    """A `typer.Option` in a help panel; a flag shows no `<bool>` type next to it."""
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


def flag(*names: str, help: str, panel: str, **kw: Any) -> Any:
    return option(*names, help=help, panel=panel, metavar="", **kw)


def examples(*lines: str) -> str:
    """An epilog of example commands, one a line: click's `\\b` keeps the lines unwrapped."""
    return "Examples:\n\n\b\n" + "\n".join(lines)


class PanelCommand(TyperCommand):
    """Plain-text help with one section per `rich_help_panel`.

    Typer shows panels only through Rich, whose import alone would double the start-up time of
    `--help`; click's formatter draws the same groups as plain sections, in the order the
    parameters are declared, and is the same with or without colour.
    """

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                title = "Arguments"
            else:
                title = getattr(param, "rich_help_panel", None) or "Options"
            sections.setdefault(title, []).append(record)
        for title, records in sections.items():
            with formatter.section(title):
                formatter.write_dl(records)


ASK_EXAMPLES = examples(
    'reason ask "What is 17*23?" --branches 8 --max-tokens 512',
    'echo "What is 17*23?" | reason ask --branches 4 --json | jq .answer',
    'reason ask "What is 6*7?" --expect 42 --json',
    'reason ask "What is 12 + 30?" --strategy auto --budget-tokens 800',
    'reason ask "..." -s best-of-n --verifier self -n 8',
)
THINK_EXAMPLES = examples(
    'reason think "Is 1001 prime?" --max-tokens 4000',
    'reason think "..." --min-tokens 1000 --max-tokens 4000',
    'reason think "..." --strategy revise --rounds 3 --final vote',
    'reason think "What is 12 + 30?" --max-tokens 64 --json',
)
STRATEGIES_EXAMPLES = examples(
    "reason strategies",
    "reason strategies --json | jq -r '.[].name'",
    'reason ask "..." --strategy weighted-vote --early-stop',
)
MODELS_EXAMPLES = examples(
    "reason models list",
    "reason models show smollm2-135m",
    "reason models pull qwen2.5-1.5b-instruct",
    "reason models pull bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF:Q4_K_M",
    "reason models rm deepseek-r1-1.5b",
)
DOCTOR_EXAMPLES = examples(
    "reason doctor",
    "reason doctor -n 32 --max-tokens 2048",
    "reason doctor -m qwen3-4b --gpu-layers 20 --json",
)
BENCH_EXAMPLES = examples(
    "reason bench run gsm8k.jsonl -s vote -n 1,4,8,16 --limit 200 --out results/run.jsonl",
    "reason bench run data.jsonl --resume results/run.jsonl",
    "reason bench report results/run.jsonl --plot curve.png",
    "reason bench compare base.jsonl trained.jsonl",
)
ROLLOUTS_EXAMPLES = examples(
    "reason rollouts data.jsonl --branches 8 --out grpo.jsonl",
    "reason rollouts data.jsonl --resume grpo.jsonl",
    "reason rollouts data.jsonl -n 16 --max-tokens 128 --limit 100 -o small.jsonl",
)
TRAIN_EXAMPLES = examples(
    "reason train grpo --model smollm2-135m --task arithmetic --steps 300 --out smollm2-arith",
    "reason train grpo --resume runs/smollm2-arith --steps 400",
    "reason train heldout --task arithmetic -n 200 -o heldout.jsonl",
)
LOGS_EXAMPLES = examples(
    "reason logs list",
    "reason logs list --search 17*23 -n 50",
    "reason logs show 12 --json",
    "reason logs rm 12",
)
SERVE_EXAMPLES = examples(
    'reason serve --model smollm2-135m --port 8080 --api-key "$KEY"',
    "reason serve --strategy vote --branches 8",
    "reason serve --threads 8 --max-branches 64",
)
