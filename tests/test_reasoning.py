"""The reasoning conventions outside the server: the streaming trace splitter against the split
the strategies make, and `reason think`'s `--hide-thinking` / `--reasoning-budget` run for real on
the tiny GGUF with the R1-Zero think template."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tiny_gguf import write_tiny_gguf

from reasoncli.reasoning import ReasoningStream, TraceFilter, skip_thinking, template_think_tags
from reasoncli.strategies.parallel import split_thinking
from reasoncli.train.think_format import THINK_CHAT_TEMPLATE
from tests.test_cli import reason

if TYPE_CHECKING:
    from remote_support import FaultProxy

TAGS = ("<think>", "</think>")
TEXTS = [
    ("<think>\nfirst 2+2 is 4 </think>\n\nThe answer is 4.", False),
    ("  let me see </thi", True),  # cut mid-tag: the partial tag is not trace
    ("carry the one\nWait\nno\n</think>The answer is 5.", True),
    ("<think></think>The answer is 1.", False),
    ("<think>still going when the budget ran out  ", False),
]


@pytest.mark.parametrize(("text", "opened"), TEXTS)
@pytest.mark.parametrize("seed", range(5))
def test_the_streamed_trace_is_always_a_prefix_of_the_final_one(
    text: str, opened: bool, seed: int
) -> None:
    rng = random.Random(seed)
    stream = ReasoningStream(TAGS, open_at_start=opened)
    cuts = sorted(rng.sample(range(1, len(text)), k=min(6, len(text) - 1)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    final = split_thinking(text, TAGS)[0] if not opened or TAGS[1] in text else text.strip()
    sent = ""
    for piece in pieces:
        sent += stream.feed(piece)
        assert final is not None and final.startswith(sent)
    assert sent + stream.rest(final) == final


def test_forced_text_after_a_stop_drops_the_held_back_partial_tag() -> None:
    """The engine emits `</thi` before it knows the stop matched; the branch text loses it."""
    stream = ReasoningStream(TAGS, open_at_start=True)
    sent = stream.feed("two plus two</thi") + stream.feed("\nWait", forced=True)
    sent += stream.feed(" it is four\n</think>\n\nFinal Answer: 4", forced=True)
    assert sent == "two plus two\nWait it is four"


def test_the_trace_filter_shows_only_what_follows_the_trace() -> None:
    shown = TraceFilter(TAGS, opened=True)
    out = "".join(
        shown.feed(p) for p in ["thinking ", "hard\n</th", "ink>\n\nThe answer", " is 4."]
    )
    assert out == "The answer is 4."
    plain = TraceFilter(TAGS)
    assert "".join(plain.feed(p) for p in ["<", "think>x</think> ok"]) == "ok"
    assert (
        "".join(TraceFilter(TAGS).feed(p) for p in ["The", " answer is 4."]) == "The answer is 4."
    )


def test_think_tags_come_from_a_template_that_writes_them() -> None:
    assert template_think_tags(THINK_CHAT_TEMPLATE) == TAGS
    assert template_think_tags("{{ messages }}") is None
    assert skip_thinking("<|im_start|>assistant\n<think>\n", TAGS).endswith(
        "<think>\n\n</think>\n\n"
    )
    assert skip_thinking("assistant\n", TAGS) == "assistant\n<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def think_gguf(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("think") / "tiny-think.gguf"
    return write_tiny_gguf(smollm2_path, out, chat_template=THINK_CHAT_TEMPLATE)


def run_think(think_gguf: Path, *flags: str) -> tuple[list[dict], dict]:
    proc = reason(
        "think", "-m", str(think_gguf), "What is 2+2?", "--answer-tokens", "6", "--jsonl",
        *flags, env={"REASON_NO_LOG": "1"},
    )  # fmt: skip
    assert proc.returncode in (0, 2), proc.stderr  # 2: random weights may give no answer
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    return [e for e in events if e["event"] == "token"], events[-1]


def test_hide_thinking_keeps_the_trace_out_of_events_but_in_the_result(think_gguf: Path) -> None:
    tokens, result = run_think(think_gguf, "--reasoning-budget", "8", "--hide-thinking")
    trace = result["branches"][0]["thinking"]
    assert trace and result["details"]["forced_answer"]  # the model's template declared the tags
    streamed = "".join(t["text"] for t in tokens)
    assert streamed.startswith("Final Answer:") and trace not in streamed
    shown, _ = run_think(think_gguf, "--reasoning-budget", "8")
    assert trace in "".join(t["text"] for t in shown)


def test_reasoning_budget_caps_thinking_and_zero_skips_it(think_gguf: Path) -> None:
    _, capped = run_think(think_gguf, "--reasoning-budget", "5", "--max-tokens", "64")
    branch = capped["branches"][0]
    assert capped["details"]["forced_answer"] and "</think>" in branch["text"]
    assert branch["tokens"] <= 5 + 6 + 8  # budget, answer tokens, the forced text
    _, skipped = run_think(think_gguf, "--reasoning-budget", "0", "--max-tokens", "5")
    assert skipped["branches"][0]["thinking"] is None
    assert "</think>" not in skipped["branches"][0]["text"]
    assert skipped["prompt_tokens"] > capped["prompt_tokens"]  # the closed empty thought


def test_a_remote_server_without_a_template_is_asked_for_the_budget(proxy: FaultProxy) -> None:
    """`reason` cannot force a budget through a server's own chat template: the budget goes in
    the request (llama.cpp's `thinking_budget_tokens`; 0 also turns thinking off in the
    template), and the server (here llama_cpp.server, which ignores what it does not know)
    still answers."""
    from reasoncli.events import discard
    from reasoncli.models.catalog import load_catalog
    from reasoncli.remote.session import RemoteRequest, open_remote_session
    from reasoncli.strategies.base import StrategyOptions, get_strategy

    for budget, extra in ((24, {}), (0, {"chat_template_kwargs": {"enable_thinking": False}})):
        proxy.reset()
        request = RemoteRequest(base_url=proxy.base_url, model="tiny")
        session = open_remote_session(request, load_catalog())
        try:
            assert session.style is None  # chat API: the server's own template
            session.pass_thinking_budget(budget)
            options = StrategyOptions(branches=2, max_tokens=6, seed=1)
            result = get_strategy("vote").run("2+2?", session, options, discard)
        finally:
            session.close()
        assert result.generated_tokens > 0
        bodies = [r.json() for r in proxy.requests if r.path.endswith("completions")]
        assert bodies and all("messages" in b for b in bodies)
        for body in bodies:
            assert body["thinking_budget_tokens"] == budget
            assert {k: body[k] for k in extra} == extra


@pytest.mark.parametrize(
    ("owned_by", "props", "n"),
    [
        ("llamacpp", {"total_slots": 4}, 4),  # -np 4: up to 4 sibling branches per request
        ("llamacpp", {"total_slots": 1}, 0),  # one slot: one branch per request
        ("llamacpp", {}, 0),  # no /props
        ("vllm", {"total_slots": 4}, 0),  # vLLM's `n` is known already (N_SERVERS)
    ],
)
def test_llama_server_n_follows_its_slots(owned_by: str, props: dict, n: int) -> None:
    """Decision only: no llama-server binary is built here to test PR #17775's `n` for real."""
    from reasoncli.remote.client import ServerInfo, llama_server_n

    assert llama_server_n(ServerInfo(("m",), owned_by), props) == n
