"""A compact Rich summary of a finished (or interrupted) run, for stderr.

The answer itself goes to stdout; this is what a person at a terminal reads to judge it: how
strongly the branches agreed, what it cost, and why the run stopped when it did.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from reasoncli.results import BranchResult, Result

__all__ = ["render_summary", "summary_renderable"]

REWARD_KEYS = ("accuracy", "format", "stop", "total", "advantage")
MAX_MEMBERS = 12


def render_summary(result: Result, console: Console) -> None:
    console.print(summary_renderable(result))


def summary_renderable(result: Result) -> RenderableType:
    """The summary as one renderable, so callers can place it inside other layouts."""
    parts: list[RenderableType] = [_answer_line(result), _stats_line(result)]
    if result.interrupted:
        parts.append(Text(_interrupted_line(result), style="yellow"))
    if result.stop_reason:
        parts.append(Text(f"stopped early: {result.stop_reason}", style="green"))
    if result.votes:
        parts.append(_votes_table(result))
    rewarded = [b for b in result.branches if b.reward]
    if rewarded:
        parts.append(_rewards_table(rewarded))
    return Group(*parts)


def _answer_line(result: Result) -> Text:
    text = Text("answer: ", style="bold")
    if result.answer is None:
        text.append("none", style="bold red")
    else:
        text.append(result.answer, style="bold green")
    votes = _votes_cast(result)
    if result.interrupted:
        if votes:
            text.append(
                f"  ({result.share:.0%} of the {_n(votes, 'vote')} cast before the interrupt)"
            )
        return text
    answered = sum(1 for b in result.branches if b.answer is not None)
    text.append(
        f"  ({result.share:.0%} of the vote, {answered}/{len(result.branches)} branches answered)"
    )
    return text


def _interrupted_line(result: Result) -> str:
    """Exactly what the partial vote counts: a branch votes once it has ended on its own; one
    cut off mid-answer does not, whatever numbers its text already holds."""
    votes = _votes_cast(result)
    cut = sum(1 for b in result.branches if b.finish_reason == "interrupted")
    verb = "does" if cut == 1 else "do"
    cut_text = f"{_n(cut, 'branch')} cut off mid-answer {verb} not vote" if cut else "none cut off"
    if not votes:
        return f"interrupted before any branch gave an answer: no vote; {cut_text}"
    return (
        f"interrupted: the vote counts the {_n(votes, 'answer')} of finished branches; {cut_text}"
    )


def _votes_cast(result: Result) -> int:
    return sum(g.count for g in result.votes)


def _n(count: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{count} {noun if count == 1 else plural}"


def _stats_line(result: Result) -> Text:
    t = result.timings
    return Text(
        f"{result.strategy} · {result.model} · prompt {result.prompt_tokens:,} tok · "
        f"generated {result.generated_tokens:,} tok · {result.tokens_per_s:.1f} tok/s · "
        f"load {t.load_s:.1f}s, prompt {t.prompt_s:.1f}s, generate {t.generate_s:.1f}s, "
        f"total {t.total_s:.1f}s",
        style="dim",
    )


def _votes_table(result: Result) -> Table:
    show_weight = any(abs(g.weight - g.count) > 1e-9 for g in result.votes)
    total_weight = sum(g.weight for g in result.votes) or 1.0
    table = Table(title="votes", title_justify="left", box=None, pad_edge=False)
    table.add_column("answer")
    table.add_column("count", justify="right")
    if show_weight:
        table.add_column("weight", justify="right")
    table.add_column("share", justify="right")
    table.add_column("branches")
    for g in result.votes:
        leader = result.answer is not None and g.answer == result.answer
        members = " ".join(f"#{m}" for m in g.members[:MAX_MEMBERS])
        if len(g.members) > MAX_MEMBERS:
            members += f" +{len(g.members) - MAX_MEMBERS}"
        row: list[RenderableType] = [
            Text(g.answer, style="bold green" if leader else ""),
            str(g.count),
        ]
        if show_weight:
            row.append(f"{g.weight:.2f}")
        row += [f"{g.weight / total_weight:.0%}", members]
        table.add_row(*row)
    return table


def _rewards_table(branches: list[BranchResult]) -> Table:
    """GRPO-style rewards per branch: the known components first, anything else after."""
    keys = [k for k in REWARD_KEYS if any(k in (b.reward or {}) for b in branches)]
    keys += sorted({k for b in branches for k in (b.reward or {})} - set(keys))
    table = Table(title="rewards", title_justify="left", box=None, pad_edge=False)
    table.add_column("branch")
    table.add_column("answer")
    for key in keys:
        table.add_column(key, justify="right")
    for b in branches:
        reward = b.reward or {}
        cells = [_reward_cell(k, reward) for k in keys]
        table.add_row(f"#{b.id}", b.answer if b.answer is not None else "—", *cells)
    return table


def _reward_cell(key: str, reward: dict[str, float]) -> str:
    if key not in reward:
        return ""
    return f"{reward[key]:+.2f}" if key == "advantage" else f"{reward[key]:.2f}"
