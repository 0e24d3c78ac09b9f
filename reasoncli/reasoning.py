"""The reasoning conventions thinking-model clients expect, shared by `reason serve` and the CLI.

- Think tags come from the models.yaml entry, or from a chat template that writes `<think>` and
  `</think>` (so a model trained with `reason train grpo --format think` needs no entry field).
- A thinking budget comes from llama.cpp's names (`--reasoning-budget`, `thinking_budget_tokens`)
  or from OpenAI's `reasoning_effort`, mapped per model (models.yaml `reasoning_effort:`).
  A budget of 0, or effort `none`, skips thinking: the prompt closes an empty thought, as Qwen3's
  template does for `enable_thinking: false`.
- `ReasoningStream` splits one branch's text into trace and answer while it is generated, so a
  server can send `delta.reasoning_content` as the trace is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from reasoncli.events import BranchText, Event
from reasoncli.results import Result

EFFORTS = ("none", "low", "medium", "high")
# Thinking tokens per effort when models.yaml does not say: s1's budgets span 512 to 8192 for
# 32B models; these sit lower because `reason` mostly runs small local models.
DEFAULT_EFFORT_BUDGETS: Mapping[str, int] = {"low": 256, "medium": 1024, "high": 4096}
THINK_TAGS = ("<think>", "</think>")


def template_think_tags(template: str | None) -> tuple[str, str] | None:
    """`<think>`/`</think>` when a chat template writes both (R1 distills, Qwen3, our own)."""
    if template and all(tag in template for tag in THINK_TAGS):
        return THINK_TAGS
    return None


def opens_thinking(prompt: str, tags: tuple[str, str] | None) -> bool:
    """Whether the prompt already opened the thought (the template ends with `<think>`)."""
    return tags is not None and prompt.rstrip().endswith(tags[0])


def skip_thinking(prompt: str, tags: tuple[str, str]) -> str:
    """The prompt with an empty thought closed, so the model answers at once."""
    open_tag, close_tag = tags
    if opens_thinking(prompt, tags):
        return f"{prompt.rstrip()}\n\n{close_tag}\n\n"
    return f"{prompt}{open_tag}\n\n{close_tag}\n\n"


@dataclass(frozen=True)
class ThinkingBudget:
    """What a request or the CLI asked of thinking: None tokens means no budget was given."""

    tokens: int | None = None

    @property
    def skip(self) -> bool:
        return self.tokens == 0


def effort_budget(effort: str, budgets: Mapping[str, int] | None = None) -> ThinkingBudget:
    """`reasoning_effort` as a thinking budget; `none` is 0 (no thinking)."""
    if effort == "none":
        return ThinkingBudget(0)
    table = {**DEFAULT_EFFORT_BUDGETS, **(budgets or {})}
    return ThinkingBudget(table[effort])


def settle_reasoning(result: Result, count: Callable[[str], int], *, opened: bool = False) -> int:
    """Fill each branch's trace token count; returns their sum for `reasoning_tokens`.

    `opened`: the prompt opened the thought, so a branch cut before its close tag (no tag in its
    text, so the strategies saw no trace) was thinking all along. Counts re-tokenize the trace:
    the engine does not mark where it ended.
    """
    total = 0
    for b in result.branches:
        if opened and b.thinking is None and b.text.strip():
            b.thinking = b.text.strip()
        b.thinking_tokens = count(b.thinking) if b.thinking else 0
        total += b.thinking_tokens
    return total


@dataclass
class ReasoningStream:
    """One branch's trace, released as it is written and never more than the final split says.

    Text is held back while it could still be the start of a tag, and trailing whitespace is
    held back too (the final trace is stripped), so what was sent is always a prefix of
    `split_thinking`'s trace for the finished text; `rest()` gives what remains of it.
    """

    tags: tuple[str, str]
    open_at_start: bool = False
    sent: str = ""
    _state: str = field(default="before", init=False)  # before | thinking | done
    _buffer: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if self.open_at_start:
            self._state = "thinking"

    def feed(self, text: str, *, forced: bool = False) -> str:
        """New trace text that is safe to send now ("" while undecided or after the trace)."""
        open_tag, close_tag = self.tags
        if self._state == "done":
            return ""
        if forced and self._state == "thinking":
            # Forced text follows a stop: a partial close tag held back was cut from the branch.
            self._buffer = self._buffer[
                : len(self._buffer) - _partial_suffix(self._buffer, close_tag)
            ]
        self._buffer += text
        if self._state == "before":
            head = self._buffer.lstrip()
            if open_tag in head:
                self._state = "thinking"
                self._buffer = head.split(open_tag, 1)[1]
            elif not open_tag.startswith(head):  # the text does not open a thought
                self._state = "done"
                return ""
            else:
                return ""
        if close_tag in self._buffer:
            out = self._buffer.split(close_tag, 1)[0].rstrip()
            self._state, self._buffer = "done", ""
        else:
            keep = _partial_suffix(self._buffer, close_tag)
            ready = self._buffer[: len(self._buffer) - keep]
            out = ready.rstrip()
            self._buffer = self._buffer[len(out) :]
        if not self.sent:
            out = out.lstrip()
        self.sent += out
        return out

    def rest(self, final: str | None) -> str:
        """The part of the final trace not yet sent ("" when it does not continue `sent`)."""
        if not final or not final.startswith(self.sent):
            return ""
        return final[len(self.sent) :]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


@dataclass
class TraceFilter:
    """One branch's text with its trace held out, as it is generated (`--hide-thinking`).

    `opened`: the prompt opened the thought, so text is trace until the close tag. Otherwise text
    that starts with the open tag is trace until the close tag, and any other text is shown.
    """

    tags: tuple[str, str]
    opened: bool = False
    _text: str = field(default="", init=False)
    _shown: int = field(default=0, init=False)

    def feed(self, text: str) -> str:
        """The newly visible text ("" while it is trace or may still open one)."""
        open_tag, close_tag = self.tags
        self._text += text
        head = self._text.lstrip()
        if close_tag in self._text:
            visible = self._text.split(close_tag, 1)[1].lstrip()
        elif self.opened or head.startswith(open_tag) or open_tag.startswith(head):
            visible = ""  # thinking, or undecided
        else:
            visible = self._text
        out = visible[self._shown :]
        self._shown = max(self._shown, len(visible))
        return out


class HideThinking:
    """An event sink filter: branch text without its trace; events with no text left dropped."""

    def __init__(self, tags: tuple[str, str], opened: bool) -> None:
        self.tags, self.opened = tags, opened
        self._branches: dict[int, TraceFilter] = {}

    def __call__(self, event: Event) -> Event | None:
        if not isinstance(event, BranchText):
            return event
        branch = self._branches.setdefault(event.branch, TraceFilter(self.tags, self.opened))
        text = branch.feed(event.text)
        return replace(event, text=text) if text else None
