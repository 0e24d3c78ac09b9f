"""The server's prompt cache (engine/prefix_cache.py) on real llama.cpp: a run that starts from a
cached prefix gets the tokens and log-probabilities it gets when it prefills its whole prompt,
decodes only the rest, and the cache takes no branch slot."""

from __future__ import annotations

import threading

import pytest
from test_engine import GREEDY, run_all

from reasoncli.engine.model import LlamaModel
from reasoncli.engine.pool import SharedContext
from reasoncli.engine.prefix_cache import MIN_COPY_TOKENS, PrefixTable, Reuse, common_prefix
from reasoncli.engine.sampling import Sampling

SYSTEM = "<|im_start|>system\nThink step by step, then give the answer on its own line.<|im_end|>\n"
QUESTIONS = [
    f"{SYSTEM}<|im_start|>user\nWhat is 17 times 23?<|im_end|>\n<|im_start|>assistant\n",
    f"{SYSTEM}<|im_start|>user\nName the capital of France.<|im_end|>\n<|im_start|>assistant\n",
]
SAMPLINGS = (GREEDY, Sampling(temperature=0.9, seed=11))


def pool(
    model: LlamaModel, threads: int, *, prompt_cache: bool, max_runs: int = 2
) -> SharedContext:
    return SharedContext(
        model,
        max_branches=4,
        max_runs=max_runs,
        ctx_per_branch=256,
        n_threads=threads,
        prompt_cache=prompt_cache,
    )


def run_once(shared: SharedContext, model: LlamaModel, question: str) -> tuple[object, int, int]:
    """(tokens and log-probabilities of two branches, prompt tokens decoded, tokens reused)."""
    tokens = model.tokenize(question)
    with shared.open_engine(tokens, max_branches=2, max_tokens=24, logprobs=3) as engine:
        bs = [engine.add_branch(s, 24) for s in SAMPLINGS]
        run_all(engine)
        out = [(b.tokens, b.finish_reason, b.logprobs) for b in bs]
        return out, engine.prompt_tokens_decoded, engine.prompt_tokens_cached


def test_cached_prefix_gives_the_same_tokens_and_logprobs(
    tiny_model: LlamaModel, threads: int
) -> None:
    order = [0, 1, 0, 0, 1]  # a shared system prompt, then whole prompts seen before
    results = {}
    for cache in (False, True):
        shared = pool(tiny_model, threads, prompt_cache=cache)
        try:
            results[cache] = [run_once(shared, tiny_model, QUESTIONS[i]) for i in order]
            stats = shared.prefixes.stats if shared.prefixes else None
        finally:
            shared.close()
    lengths = [len(tiny_model.tokenize(QUESTIONS[i])) for i in order]
    uncached, cached = results[False], results[True]
    assert [r[0] for r in cached] == [r[0] for r in uncached]  # tokens and logprobs, exactly
    assert [r[1] for r in uncached] == lengths
    assert [r[2] for r in uncached] == [0] * len(order)
    reused = [r[2] for r in cached]
    shared_prefix = common_prefix(*(tiny_model.tokenize(q) for q in QUESTIONS))
    assert shared_prefix > MIN_COPY_TOKENS
    # The first run has nothing cached; the second keeps the system prompt of the first run's
    # sequence; the third has its whole prompt in that sequence again, and decodes only its last
    # token, for the logits its branches sample their first tokens from; and so on.
    assert reused[0] == 0
    assert reused[1] == shared_prefix
    assert reused[2:] == [n - 1 for n in lengths[2:]]
    assert [r[1] + r[2] for r in cached] == lengths
    assert stats is not None
    assert (stats.prompts, stats.hits, stats.tokens_reused) == (5, 4, sum(reused))
    assert stats.tokens_decoded == sum(lengths) - sum(reused)


def test_a_prefix_is_copied_from_a_running_runs_prompt(
    tiny_model: LlamaModel, threads: int
) -> None:
    """The second run gets the other, empty prompt sequence and copies the first one's prefix
    (a full-stream copy, then the cells past the prefix dropped) while the first still runs."""
    expected = {}
    plain = pool(tiny_model, threads, prompt_cache=False)
    try:
        for i in (0, 1):
            expected[i] = run_once(plain, tiny_model, QUESTIONS[i])[0]
    finally:
        plain.close()
    shared = pool(tiny_model, threads, prompt_cache=True)
    got: dict[int, object] = {}
    reused: dict[int, int] = {}
    first_ready = threading.Event()
    second_done = threading.Event()

    def run(i: int) -> None:
        tokens = tiny_model.tokenize(QUESTIONS[i])
        if i == 1:
            first_ready.wait(60)
        with shared.open_engine(tokens, max_branches=2, max_tokens=24, logprobs=3) as engine:
            bs = [engine.add_branch(s, 24) for s in SAMPLINGS]
            if i == 0:
                first_ready.set()
                second_done.wait(60)  # hold the first prompt sequence until the second is done
            run_all(engine)
            got[i] = [(b.tokens, b.finish_reason, b.logprobs) for b in bs]
            reused[i] = engine.prompt_tokens_cached
        if i == 1:
            second_done.set()

    workers = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    try:
        assert got == expected
        assert reused == {0: 0, 1: common_prefix(*(tiny_model.tokenize(q) for q in QUESTIONS))}
        assert shared.free_branches == 4  # the cache holds prompt sequences, never branch slots
        assert len(shared.context.slots) == len(shared.context.slots.ids)
    finally:
        shared.close()


@pytest.mark.parametrize("cache", [True, False])
def test_branch_slots_are_not_taken_by_the_cache(
    tiny_model: LlamaModel, threads: int, cache: bool
) -> None:
    shared = pool(tiny_model, threads, prompt_cache=cache)
    try:
        for q in QUESTIONS:
            run_once(shared, tiny_model, q)
        assert shared.free_branches == 4
        assert len(shared.context.slots) == len(shared.context.slots.ids)
        # Every branch can still be held at once after the cache has filled.
        tokens = tiny_model.tokenize(QUESTIONS[0])
        with shared.open_engine(tokens, max_branches=4, max_tokens=8) as engine:
            bs = [engine.add_branch(GREEDY, 8) for _ in range(4)]
            run_all(engine)
            assert all(b.tokens == bs[0].tokens for b in bs)
    finally:
        shared.close()


def test_prefix_table_prefers_the_longest_prefix_then_the_least_recently_used() -> None:
    table = PrefixTable([0, 1, 2])
    table.record(0, [1, 2, 3, 4, 5, 6], reused=0)
    table.record(1, [1, 2, 3, 9, 9, 9], reused=3)
    table.record(2, [7, 7], reused=0)
    assert table.choose([0, 1, 2], [1, 2, 3, 4, 5, 6, 7]) == 0  # holds the most of it
    assert table.choose([1, 2], [8, 8]) == 2  # no prefix anywhere: the one losing the fewest
    table.record(1, [7, 6], reused=0)
    assert table.choose([1, 2], [8, 8]) == 2  # as few to lose: the least recently used
    table.record(1, [1, 2, 3, 9, 9, 9], reused=3)
    assert table.plan(2, [1, 2, 3, 4, 5, 6, 7]) == Reuse(0, 6)  # copy from sequence 0
    assert table.plan(0, [1, 2, 3, 4, 0]) == Reuse(None, 4)  # its own KV, trimmed
    assert table.plan(2, [1, 2, 0]) == Reuse(None, 0)  # too short a prefix to copy a stream
    assert table.plan(2, [7, 7, 7]) == Reuse(None, 2)
    table.forget(0)
    assert table.plan(2, [1, 2, 3, 4, 5, 6]) == Reuse(None, 0)  # 1 holds only 3 of them
    assert (table.stats.prompts, table.stats.hits, table.stats.tokens_reused) == (5, 2, 6)
