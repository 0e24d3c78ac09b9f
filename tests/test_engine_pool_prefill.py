"""A run admitted while another decodes (engine/prompt_feed.py, on real llama.cpp): its prompt is
fed in chunks into the shared decode rounds, so the running run keeps getting a token every
round, and both runs get the tokens and log-probabilities they get one after the other."""

from __future__ import annotations

import math
import threading

import pytest
from test_engine import GREEDY

from reasoncli.engine import pool as pool_module
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.pool import SharedContext
from reasoncli.engine.sampling import Sampling

SYSTEM = "<|im_start|>system\nThink step by step, then give the answer on its own line.<|im_end|>\n"
SHORT = f"{SYSTEM}<|im_start|>user\nWhat is 17 times 23?<|im_end|>\n<|im_start|>assistant\n"
STORY = "A farmer has 17 cows, buys 5 more, sells 3, and then counts them all again. " * 3
LONG = f"{SYSTEM}<|im_start|>user\n{STORY}How many cows?<|im_end|>\n<|im_start|>assistant\n"
SAMPLINGS = (GREEDY, Sampling(temperature=0.9, seed=11))
N_BATCH = 16  # small, so the long prompt takes several rounds
MAX_TOKENS = 48

Result = list[tuple[list[int], str | None, object]]


def pool(model: LlamaModel, threads: int, *, prompt_cache: bool) -> SharedContext:
    return SharedContext(
        model,
        max_branches=4,
        max_runs=2,
        ctx_per_branch=384,
        n_batch=N_BATCH,
        n_threads=threads,
        prompt_cache=prompt_cache,
    )


def run(
    shared: SharedContext,
    model: LlamaModel,
    prompt: str,
    log: list[str],
    name: str,
    started: threading.Event | None = None,
) -> Result:
    """Two branches of `prompt` to the end; `log` gets `name` after each step, and `started` is
    set once the run has stepped twice."""
    tokens = model.tokenize(prompt)
    log.append(f"{name} admit")
    with shared.open_engine(tokens, max_branches=2, max_tokens=MAX_TOKENS, logprobs=3) as engine:
        log.append(f"{name} prompt in")
        bs = [engine.add_branch(s, MAX_TOKENS) for s in SAMPLINGS]
        while engine.live:
            engine.step()
            log.append(name)
            if started is not None and log.count(name) == 2:
                started.set()
        return [(b.tokens, b.finish_reason, b.logprobs) for b in bs]


def one_after_the_other(model: LlamaModel, threads: int, cache: bool) -> tuple[Result, Result]:
    shared = pool(model, threads, prompt_cache=cache)
    try:
        return run(shared, model, SHORT, [], "A"), run(shared, model, LONG, [], "B")
    finally:
        shared.close()


def concurrently(
    model: LlamaModel, threads: int, cache: bool
) -> tuple[Result, Result, list[str], SharedContext]:
    """A runs; once it has stepped twice, B (the long prompt) is admitted beside it."""
    shared = pool(model, threads, prompt_cache=cache)
    log: list[str] = []
    out: dict[str, Result] = {}
    started = threading.Event()

    def a() -> None:
        out["A"] = run(shared, model, SHORT, log, "A", started)

    def b() -> None:
        started.wait(60)
        out["B"] = run(shared, model, LONG, log, "B")

    workers = [threading.Thread(target=f) for f in (a, b)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    shared.close()
    return out["A"], out["B"], log, shared


@pytest.fixture
def patient_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A round waits for every busy run (no 4 ms cut-off), so the order does not hang on timing."""
    monkeypatch.setattr(pool_module, "GATHER_S", 30.0)


@pytest.mark.parametrize("cache", [False, True])
def test_a_run_admitted_mid_decode_gets_what_it_gets_alone(
    tiny_model: LlamaModel, threads: int, cache: bool, patient_rounds: None
) -> None:
    expected = one_after_the_other(tiny_model, threads, cache)
    a, b, log, shared = concurrently(tiny_model, threads, cache)
    assert (a, b) == expected  # tokens, finish reasons and log-probabilities, exactly
    assert shared.scheduler.mixed_rounds > 0
    if cache:
        assert shared.prefixes is not None and shared.prefixes.stats.tokens_reused > 0


def test_a_long_prompt_does_not_stall_the_running_run(
    tiny_model: LlamaModel, threads: int, patient_rounds: None
) -> None:
    a, _, log, shared = concurrently(tiny_model, threads, cache=False)
    body = len(tiny_model.tokenize(LONG)) - 1
    chunks = math.ceil(body / (N_BATCH - len(SAMPLINGS)))  # A's two rows take part of each batch
    assert chunks >= 5
    assert all(len(tokens) == MAX_TOKENS for tokens, _, _ in a)  # A outlives B's prefill
    during = log[log.index("B admit") : log.index("B prompt in")]
    # A gets a token in every round that feeds B a chunk (give or take the round in flight when
    # B came in); a whole prefill at once would leave A none until B's prompt is in.
    assert during.count("A") >= chunks - 1
    assert shared.scheduler.mixed_rounds >= chunks - 1
