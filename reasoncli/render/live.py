"""The Rich live view: one small panel per branch, the vote tally and the notes, on stderr.

`handle` runs once per token per branch, so it only updates state under a lock; Rich's own
refresh thread (about 8 Hz) asks `renderable()` for a frame, which snapshots that state so a
frame never sees a half-applied event.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reasoncli.answers import answers_equivalent
from reasoncli.events import (
    BranchFinished,
    BranchStarted,
    BranchText,
    Event,
    Note,
    RunStarted,
    VoteUpdated,
)

__all__ = ["LiveView"]

TAIL_CHARS = 400
NOTE_LINES = 4
TALLY_ROWS = 6
BAR_WIDTH = 20
MIN_PANEL_WIDTH = 30
COMPACT_WIDTH = 36
FORCED_STYLE = "bold yellow"
NOTE_STYLES = {
    "early_stop": "green",
    "budget": "yellow",
    "plan": "cyan",
    "interrupt": "red",
}
_SPACES = re.compile(r"\s+")


@dataclass
class _BranchState:
    id: int
    label: str = ""
    tokens: int = 0
    status: str = "running"
    answer: str | None = None
    leading: bool = False
    pieces: deque[tuple[str, bool]] = field(default_factory=deque)
    chars: int = 0

    def append(self, text: str, forced: bool) -> None:
        """Keep a bounded tail: only the last few lines are ever shown."""
        self.pieces.append((text, forced))
        self.chars += len(text)
        while self.chars > TAIL_CHARS and len(self.pieces) > 1:
            old, _ = self.pieces.popleft()
            self.chars -= len(old)

    def tail(self) -> Text:
        """The tail as one flowing line: newlines would waste the few rows a panel has."""
        text = Text()
        for piece, forced in self.pieces:
            text.append(_SPACES.sub(" ", piece), style=FORCED_STYLE if forced else "")
        return text


@dataclass(frozen=True)
class _PanelSnapshot:
    id: int
    title: str
    answer: str | None
    finished: bool
    leading: bool
    tail: Text
    shorter: tuple[str, ...] = ()
    """Shorter titles, best first, for panels too narrow for `title`."""

    def title_within(self, room: int) -> str:
        """The longest title that fits `room` cells whole: Rich would cut one mid-word
        (`prun─`), and the status is the part worth keeping."""
        for title in (self.title, *self.shorter):
            if len(title) <= room:
                return title
        return (self.shorter or (self.title,))[-1]


class _Tail:
    """The last `lines` non-blank wrapped lines of a text, so a small panel shows the newest."""

    def __init__(self, text: Text, lines: int) -> None:
        self.text = text
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wrapped = [
            line for line in self.text.wrap(console, options.max_width) if line.plain.strip()
        ]
        shown = wrapped[-self.lines :]
        if len(wrapped) > self.lines and shown:
            first = Text("…", style="dim")
            first.append_text(shown[0])
            first.truncate(options.max_width, overflow="ellipsis")
            shown[0] = first
        for line in shown:
            line.no_wrap = True
            line.overflow = "ellipsis"
        shown += [Text("")] * (self.lines - len(shown))
        yield from shown


class _Line:
    """One branch on one line (the compact layout): status, answer, then the newest text."""

    def __init__(self, p: _PanelSnapshot) -> None:
        self.p = p

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        p = self.p
        line = Text(f"{p.title} ", style="dim" if p.finished and not p.leading else "")
        line.stylize("bold", 0, len(f"#{p.id}"))
        if p.finished and p.answer is not None:
            line.append(f"= {p.answer} ", style="bold green" if p.leading else "")
        room = options.max_width - line.cell_len - 1
        if room > 0 and p.tail.plain:
            tail = p.tail[-room:] if len(p.tail) > room else p.tail
            if len(p.tail) > room:
                line.append("…", style="dim")
            line.append_text(tail)
        line.truncate(options.max_width, overflow="ellipsis")
        line.no_wrap = True
        yield line


class _Grid:
    """Branch panels laid out to the width and height given: fewer tail lines as branches grow,
    and one line per branch when even one-line panels would not fit."""

    def __init__(self, panels: list[_PanelSnapshot], reserved_height: int) -> None:
        self.panels = panels
        self.reserved_height = reserved_height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.panels:
            return
        n = len(self.panels)
        columns = max(1, min(n, options.max_width // MIN_PANEL_WIDTH))
        rows = math.ceil(n / columns)
        height = options.height or console.size.height
        per_panel = (height - self.reserved_height) // rows - 2  # minus the panel borders
        cells: list[RenderableType]
        if per_panel >= 1:
            # a panel's title sits in its top border: "╭─ title ─╮" leaves width - 6 cells
            room = options.max_width // columns - 6
            cells = [self._panel(p, min(4, per_panel), room) for p in self.panels]
        else:
            columns = max(1, min(n, options.max_width // COMPACT_WIDTH))
            cells = [_Line(p) for p in self.panels]
        grid = Table.grid(expand=True, padding=(0, 1 if per_panel < 1 else 0))
        for _ in range(columns):
            grid.add_column(ratio=1)
        for start in range(0, n, columns):
            row: list[RenderableType] = cells[start : start + columns]
            grid.add_row(*row, *([""] * (columns - len(row))))
        yield grid

    @staticmethod
    def _panel(p: _PanelSnapshot, lines: int, room: int) -> Panel:
        border, style, subtitle = "blue", "", None
        if p.finished:
            border, style = "dim", "dim"
            if p.answer is not None:
                subtitle = Text(f"= {p.answer}", style="bold green" if p.leading else "")
        if p.leading:
            border, style = "green", ""
        return Panel(
            _Tail(p.tail, lines),
            title=Text(p.title_within(room)),
            title_align="left",
            subtitle=subtitle,
            subtitle_align="right",
            border_style=border,
            style=style,
            padding=(0, 1),
        )


class LiveView:
    """A Rich `Live` view of a run: `with LiveView(console) as view: run(..., emit=view.handle)`.

    The last frame stays on screen by default (`transient=False`), so the tally is still
    visible after the answer has gone to stdout.
    """

    def __init__(
        self,
        console: Console,
        *,
        title: str = "",
        transient: bool = False,
        refresh_per_second: float = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.title = title
        self._clock = clock
        self._lock = threading.Lock()
        self._run: RunStarted | None = None
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._branches: dict[int, _BranchState] = {}
        self._vote: VoteUpdated | None = None
        self._notes: deque[Note] = deque(maxlen=NOTE_LINES)
        self._live = Live(
            console=console,
            get_renderable=self.renderable,
            refresh_per_second=refresh_per_second,
            transient=transient,
            redirect_stdout=False,  # stdout carries the answer; never swallow it into the view
        )

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._ended_at = self._clock()
        with contextlib.suppress(OSError):  # after SIGHUP there is no terminal to draw on
            self._live.stop()  # draws the final frame and shows the cursor again

    # -- events -----------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Record one event; drawing is left to Live's refresh thread."""
        with self._lock:
            if isinstance(event, BranchText):
                branch = self._branch(event.branch)
                branch.append(event.text, event.forced)
                branch.tokens = event.tokens
            elif isinstance(event, BranchStarted):
                branch = self._branch(event.branch)
                branch.label = event.label
            elif isinstance(event, BranchFinished):
                branch = self._branch(event.branch)
                branch.status, branch.answer = event.finish_reason, event.answer
                branch.tokens = event.tokens
                branch.leading = self._leads(branch)
            elif isinstance(event, VoteUpdated):
                self._vote = event
                for branch in self._branches.values():
                    branch.leading = self._leads(branch)
            elif isinstance(event, Note):
                self._notes.append(event)
            elif isinstance(event, RunStarted):
                self._run, self._started_at, self._ended_at = event, self._clock(), None

    def _branch(self, branch_id: int) -> _BranchState:
        state = self._branches.get(branch_id)
        if state is None:
            state = self._branches[branch_id] = _BranchState(branch_id)
        return state

    def _leads(self, branch: _BranchState) -> bool:
        """Equivalence, not string equality: "0.5" and "1/2" vote in the same group."""
        leader = self._vote.answer if self._vote else None
        if branch.status == "running" or branch.answer is None or leader is None:
            return False
        return answers_equivalent(branch.answer, leader)

    # -- rendering --------------------------------------------------------------------------
    def renderable(self) -> RenderableType:
        """The current frame; Live calls this on every refresh, tests may print it directly."""
        with self._lock:
            header = self._header()
            panels = [self._snapshot(b) for b in self._branches.values()]
            tally = self._tally()
            notes = self._notes_text()
            # rows the header, tally and notes take, so the grid knows what height is left
            reserved = 1 + len(self._notes)
            if self._vote:
                reserved += min(len(self._vote.groups), TALLY_ROWS + 1) + 1
        parts: list[RenderableType] = [header]
        parts.append(_Grid(panels, reserved_height=reserved))
        if tally is not None:
            parts.append(tally)
        if notes is not None:
            parts.append(notes)
        return Group(*parts)

    def _header(self) -> Text:
        text = Text()
        if self.title:
            text.append(self.title, style="bold")
            text.append("  ")
        run = self._run
        if run is None or self._started_at is None:
            text.append("starting…", style="dim")
            return text
        now = self._ended_at if self._ended_at is not None else self._clock()
        elapsed = max(0.0, now - self._started_at)
        spent = sum(b.tokens for b in self._branches.values())
        budget = max(run.branches, len(self._branches)) * run.max_tokens
        rate = spent / elapsed if elapsed > 0 else 0.0
        text.append(run.strategy, style="bold cyan")
        text.append(" · ")
        text.append(run.model, style="cyan")
        text.append(f" │ {elapsed:.1f}s │ {rate:.1f} tok/s │ ")
        text.append(f"{spent:,}", style="bold")
        text.append(f" tokens, {max(0, budget - spent):,} of {budget:,} left")
        return text

    def _snapshot(self, b: _BranchState) -> _PanelSnapshot:
        label = f" {b.label}" if b.label else ""
        title = f"#{b.id}{label} · {b.tokens} tok · {b.status}"
        shorter = (
            f"#{b.id} · {b.tokens} tok · {b.status}",
            f"#{b.id} · {b.status}",
            f"#{b.id}",
        )
        return _PanelSnapshot(
            id=b.id,
            title=title,
            shorter=shorter,
            answer=b.answer,
            finished=b.status != "running",
            leading=b.leading,
            tail=b.tail(),
        )

    def _tally(self) -> Table | None:
        vote = self._vote
        if vote is None:
            return None
        title = f"votes · finished {vote.finished}/{vote.total}"
        table = Table(
            title=title, title_justify="left", box=None, show_header=False, pad_edge=False
        )
        groups = sorted(vote.groups, key=lambda g: (-g.weight, -g.count))
        show_weight = any(not math.isclose(g.weight, g.count) for g in groups)
        total_weight = sum(g.weight for g in groups) or 1.0
        for _ in range(5 if show_weight else 4):
            table.add_column()
        for g in groups[:TALLY_ROWS]:
            leader = vote.answer is not None and g.answer == vote.answer
            share = g.weight / total_weight
            filled = round(share * BAR_WIDTH)
            bar = Text("█" * filled, style="green" if leader else "blue")
            bar.append("░" * (BAR_WIDTH - filled), style="dim")
            mark = Text(f"★ {g.answer}" if leader else f"  {g.answer}")
            mark.stylize("bold green" if leader else "")
            cells: list[RenderableType] = [mark, f"{g.count}×"]
            if show_weight:
                cells.append(f"w {g.weight:.2f}")
            cells += [bar, f"{share:.0%}"]
            table.add_row(*cells)
        if len(groups) > TALLY_ROWS:
            table.add_row(Text(f"  +{len(groups) - TALLY_ROWS} more", style="dim"))
        if not groups:
            table.add_row(Text("  no answers yet", style="dim"))
        return table

    def _notes_text(self) -> Text | None:
        if not self._notes:
            return None
        return Text("\n").join(
            Text(f"» {n.message}", style=NOTE_STYLES.get(n.topic, "dim")) for n in self._notes
        )
