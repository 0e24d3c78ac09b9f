"""Renderers fed with real event sequences, printed into in-memory consoles."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from rich.console import Console

from reasoncli.events import (
    BranchFinished,
    BranchStarted,
    BranchText,
    Event,
    Note,
    RunStarted,
    TallyGroup,
    VoteUpdated,
)
from reasoncli.render.jsonl import JsonlWriter
from reasoncli.render.live import LiveView
from reasoncli.render.plain import PlainProgress
from reasoncli.render.summary import render_summary
from reasoncli.results import BranchResult, Result, Timings, VoteGroup

SGR = re.compile(r"\x1b\[([0-9;]*)m")


class Clock:
    """A hand-driven clock, so elapsed times and rates are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def script() -> list[Event]:
    return [
        RunStarted("self-consistency", "smol", prompt_tokens=57, branches=3, max_tokens=100),
        BranchStarted(0),
        BranchStarted(1),
        BranchStarted(2),
        BranchText(0, "Let me think. 6*7", 5),
        BranchText(0, " = 42", 8),
        BranchText(1, "The answer is 41", 6),
        BranchText(2, "Hmm, six sevens", 3),
        BranchText(2, "\nWait", 4, forced=True),
        BranchText(2, " it is 42", 5),
        BranchFinished(0, "42", "eos", 8),
        BranchFinished(1, "41", "stop", 6),
        BranchFinished(2, "42", "length", 5),
        VoteUpdated(
            "42", 2 / 3, (TallyGroup("42", 2, 2.0), TallyGroup("41", 1, 1.0)), finished=3, total=3
        ),
        Note("2 of 3 branches agree: stopping early", "early_stop"),
    ]


def live_output(events: list[Event], **console_kw: Any) -> str:
    console = Console(file=io.StringIO(), width=120, force_terminal=True, **console_kw)
    view = LiveView(console, title="reason", clock=Clock())
    for event in events:
        view.handle(event)
    console.print(view.renderable())
    return console.file.getvalue()  # type: ignore[attr-defined]


def plain(text: str) -> str:
    return SGR.sub("", text)


def style_before(text: str, needle: str) -> str:
    """The SGR parameters in force where `needle` is printed."""
    match = re.search(r"\x1b\[([0-9;]*)m" + re.escape(needle), text)
    assert match, f"{needle!r} not printed with its own style"
    return match.group(1)


def test_live_view_shows_branches_tally_and_notes() -> None:
    clock = Clock()
    events = script()
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system="standard")
    view = LiveView(console, title="reason", clock=clock)
    view.handle(events[0])
    clock.now += 2.0  # the frame is drawn 2 s after RunStarted
    for event in events[1:]:
        view.handle(event)
    console.print(view.renderable())
    raw = console.file.getvalue()  # type: ignore[attr-defined]
    text = plain(raw)

    for title in ("#0 · 8 tok · eos", "#1 · 6 tok · stop", "#2 · 5 tok · length"):
        assert title in text
    assert "= 42" in text and "= 41" in text
    assert "self-consistency" in text and "smol" in text
    # 19 tokens in 2 s, budget 3 branches x 100 tokens
    assert "9.5 tok/s" in text
    assert "19 tokens, 281 of 300 left" in text
    assert "finished 3/3" in text
    assert re.search(r"★ 42\s+2×.*67%", text)
    assert re.search(r"41\s+1×.*33%", text)
    assert "2 of 3 branches agree: stopping early" in text
    assert "it is 42" in text  # the tail of branch 2 after the forced text
    # forced text stands out; the leader's answer is green, the loser's is not
    forced = style_before(raw, " Wait").split(";")
    assert "33" in forced and "1" in forced
    assert "32" in style_before(raw, " = 42 ").split(";")
    assert "32" not in style_before(raw, " = 41 ").split(";")


def test_leader_highlight_uses_answer_equivalence() -> None:
    events: list[Event] = [
        RunStarted("vote", "m", 1, 2, 10),
        BranchFinished(0, "0.5", "eos", 3),
        BranchFinished(1, "1/2", "eos", 4),
        VoteUpdated("1/2", 1.0, (TallyGroup("1/2", 2, 2.0),), finished=2, total=2),
    ]
    raw = live_output(events, color_system="standard")
    assert "32" in style_before(raw, " = 0.5 ").split(";")
    assert "32" in style_before(raw, " = 1/2 ").split(";")


def test_budget_grows_with_branches_added_later() -> None:
    events: list[Event] = [RunStarted("grpo", "m", 1, branches=2, max_tokens=50)]
    events += [BranchStarted(i) for i in range(3)]
    events.append(BranchText(2, "x", 10))
    assert "10 tokens, 140 of 150 left" in plain(live_output(events))


def test_weights_shown_only_when_they_differ_from_counts() -> None:
    vote = VoteUpdated(
        "7", 0.8, (TallyGroup("7", 1, 0.8), TallyGroup("9", 1, 0.2)), finished=2, total=4
    )
    text = plain(live_output([RunStarted("deepconf", "m", 1, 4, 10), vote]))
    assert "w 0.80" in text and "80%" in text and "20%" in text
    assert "finished 2/4" in text
    same = VoteUpdated("7", 1.0, (TallyGroup("7", 2, 2.0),), finished=2, total=2)
    assert "w 2.00" not in plain(live_output([RunStarted("vote", "m", 1, 2, 10), same]))


def test_no_color_console_emits_no_colour_codes() -> None:
    raw = live_output(script(), no_color=True)
    codes = {int(p) for params in SGR.findall(raw) for p in params.split(";") if p}
    colours = {c for c in codes if 30 <= c <= 49 or 90 <= c <= 107}
    assert colours == set()
    assert "#2" in plain(raw) and "67%" in plain(raw)


def many_branches(n: int) -> list[Event]:
    events: list[Event] = [RunStarted("vote", "m", 1, n, 4096)]
    for i in range(n):
        events.append(BranchStarted(i))
        events += [BranchText(i, f"step {k} of branch {i}\n", k) for k in range(1, 60)]
    return events


def render_sized(events: list[Event], width: int, height: int) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, force_terminal=True)
    view = LiveView(console, clock=Clock())
    for event in events:
        view.handle(event)
    console.print(view.renderable())
    return plain(console.file.getvalue())  # type: ignore[attr-defined]


def test_many_branches_keep_small_panels_showing_the_newest_text() -> None:
    text = render_sized(many_branches(32), width=120, height=40)
    assert len(text.splitlines()) <= 40
    assert text.count("╭─ #") == 32  # still one panel per branch
    assert all(f"#{i} · 59 tok · running" in text for i in range(32))
    assert "…branch 31 step 59 of" in text
    assert "step 1 of" not in text  # the start scrolled out of the bounded tail


def test_branches_that_do_not_fit_as_panels_get_one_line_each() -> None:
    events = many_branches(32)
    events.append(BranchFinished(7, "\\frac{1}{2}", "eos", 59))
    events.append(VoteUpdated("1/2", 1.0, (TallyGroup("1/2", 1, 1.0),), 1, 32))
    text = render_sized(events, width=80, height=24)
    assert len(text.splitlines()) <= 24
    assert "╭" not in text
    assert "#7 · 59 tok · eos = \\frac{1}{2} …" in text
    assert all(f"#{i} · 59 tok" in text for i in range(32))
    assert "finished 1/32" in text


def test_live_context_leaves_the_final_frame() -> None:
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    with LiveView(console, refresh_per_second=4) as view:
        for event in script():
            view.handle(event)
    text = plain(console.file.getvalue())  # type: ignore[attr-defined]
    assert "finished 3/3" in text and "#1" in text


def test_plain_progress_logs_decisions_not_tokens() -> None:
    stream = io.StringIO()
    clock = Clock()
    progress = PlainProgress(stream, clock=clock)
    for event in script():
        clock.now += 0.5
        progress.handle(event)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 6  # start, three finishes, one vote, one note
    assert "self-consistency on smol: 3 branch(es) × 100 tokens" in lines[0]
    assert lines[1].endswith("branch #0 eos after 8 tokens: 42")
    assert lines[3].endswith("branch #2 length after 5 tokens: 42")
    assert lines[4].endswith("vote 3/3 finished: 42 leads with 67% (42×2, 41×1)")
    assert lines[5].endswith("early_stop: 2 of 3 branches agree: stopping early")
    assert lines[4].startswith("[   6.5s]")
    assert "Wait" not in stream.getvalue()


def make_result() -> Result:
    return Result(
        question="What is 6*7?",
        strategy="grpo",
        model="smol",
        answer="42",
        share=2 / 3,
        votes=[VoteGroup("42", 2, 2.0, [0, 2]), VoteGroup("41", 1, 1.0, [1])],
        branches=[
            BranchResult(
                0,
                "... 42",
                "42",
                8,
                "eos",
                reward={
                    "accuracy": 1.0,
                    "format": 0.5,
                    "stop": 1.0,
                    "total": 2.5,
                    "advantage": 0.71,
                },
            ),
            BranchResult(
                1,
                "... 41",
                "41",
                6,
                "stop",
                reward={
                    "accuracy": 0.0,
                    "format": 0.5,
                    "stop": 1.0,
                    "total": 1.5,
                    "advantage": -1.41,
                },
            ),
            BranchResult(2, "... 42", "42", 5, "length"),
        ],
        prompt_tokens=57,
        generated_tokens=19,
        timings=Timings(load_s=0.4, prompt_s=0.1, generate_s=2.0, total_s=2.6),
        interrupted=True,
        stop_reason="2 of 3 branches agree",
    )


def test_render_summary() -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    render_summary(make_result(), console)
    text = plain(console.file.getvalue())  # type: ignore[attr-defined]
    assert "answer: 42" in text and "(67% of the 3 votes cast before the interrupt)" in text
    assert "the vote counts the 3 answers of finished branches; none cut off" in text
    assert "9.5 tok/s" in text and "total 2.6s" in text
    assert "interrupted" in text and "stopped early: 2 of 3 branches agree" in text
    assert re.search(r"42\s+2\s+67%\s+#0 #2", text)
    assert re.search(r"41\s+1\s+33%\s+#1", text)
    assert "advantage" in text and "+0.71" in text and "-1.41" in text
    assert re.search(r"#1\s+41\s+0\.00\s+0\.50\s+1\.00\s+1\.50", text)
    assert "weight" not in text  # weights equal counts: no column for them


def test_render_summary_without_answer() -> None:
    result = Result(question="?", strategy="vote", model="m", answer=None, share=0.0)
    console = Console(file=io.StringIO(), width=100)
    render_summary(result, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "answer: none" in text
    assert "votes" not in text and "rewards" not in text


def test_jsonl_writer_streams_events_then_the_result() -> None:
    stream = io.StringIO()
    writer = JsonlWriter(stream)
    events = script()
    for event in events:
        writer.handle(event)
    writer.write_result(make_result())
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["event"] for r in records] == [e.kind for e in events] + ["result"]
    assert records[8] == {
        "event": "token",
        "branch": 2,
        "text": "\nWait",
        "tokens": 4,
        "forced": True,
    }
    assert records[13]["groups"][0] == {"answer": "42", "count": 2, "weight": 2.0}
    assert records[-1]["answer"] == "42" and records[-1]["tokens_per_s"] == 9.5
