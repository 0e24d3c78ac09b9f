"""The branch engine against real llama.cpp, on a tiny random Llama model."""

from __future__ import annotations

import codecs
import math
from pathlib import Path

import pytest

from reasoncli.engine.branches import BranchEngine
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.sampling import Sampling
from reasoncli.engine.sizing import ContextPlan, ContextRequest, plan_context, plan_for_model
from reasoncli.errors import ResourceError

GREEDY = Sampling(temperature=0.0)
PROMPT = "<|im_start|>user\nWhat is 17 times 23?<|im_end|>\n<|im_start|>assistant\n"


def plan_for(model: LlamaModel, n_prompt: int, max_tokens: int, branches: int) -> ContextPlan:
    return plan_for_model(
        model, n_prompt=n_prompt, max_new_tokens=max_tokens, max_branches=branches
    )


def make_engine(
    model: LlamaModel, branches: int, max_tokens: int, threads: int, logprobs: int = 0
) -> BranchEngine:
    prompt = model.tokenize(PROMPT)
    plan = plan_for(model, len(prompt), max_tokens, branches)
    engine = BranchEngine.open(model, plan, n_threads=threads, logprobs=logprobs)
    engine.set_prompt(prompt)
    return engine


def run_all(engine: BranchEngine) -> None:
    for _ in engine.run():
        pass


def test_greedy_branch_matches_llama_cpp_high_level_api(
    tiny_gguf: Path, tiny_model: LlamaModel, threads: int
) -> None:
    from llama_cpp import Llama

    n = 40
    with make_engine(tiny_model, 1, n, threads) as engine:
        b = engine.add_branch(GREEDY, n)
        run_all(engine)
        ours = b.tokens
    llm = Llama(str(tiny_gguf), n_ctx=1024, n_threads=threads, flash_attn=True, verbose=False)
    expected: list[int] = []
    for tok in llm.generate(tiny_model.tokenize(PROMPT), temp=0.0):
        if tiny_model.is_eog(tok) or len(expected) == n:
            break
        expected.append(tok)
    llm.close()
    assert len(ours) > 5
    assert ours == expected[: len(ours)]


def test_same_seeds_reproduce_and_branches_differ(tiny_model: LlamaModel, threads: int) -> None:
    def sample() -> list[list[int]]:
        with make_engine(tiny_model, 4, 24, threads) as engine:
            bs = [engine.add_branch(Sampling(temperature=1.0, seed=100 + i), 24) for i in range(4)]
            run_all(engine)
            return [b.tokens for b in bs]

    first, second = sample(), sample()
    assert first == second
    assert len({tuple(t) for t in first}) == 4


def test_per_branch_budget_and_stopping_one_branch(tiny_model: LlamaModel, threads: int) -> None:
    with make_engine(tiny_model, 3, 30, threads) as engine:
        short = engine.add_branch(GREEDY, 5)
        long = engine.add_branch(GREEDY, 30)
        stopped = engine.add_branch(GREEDY, 30)
        steps = 0
        while engine.live:
            engine.step()
            steps += 1
            if steps == 3:
                engine.finish(stopped)
        assert (short.n_tokens, short.finish_reason) == (5, "length")
        assert stopped.finish_reason == "stopped" and stopped.n_tokens == 3
        assert long.n_tokens == 30 or long.finish_reason == "eos"
        assert long.tokens[:5] == short.tokens  # same greedy path, shorter budget


def test_stop_string_truncates_text(tiny_model: LlamaModel, threads: int) -> None:
    with make_engine(tiny_model, 1, 30, threads) as engine:
        ref = engine.add_branch(GREEDY, 30)
        run_all(engine)
    text = ref.text
    assert len(text) > 10
    stop = text[6:9]
    cut = text.find(stop)
    with make_engine(tiny_model, 1, 30, threads) as engine:
        b = engine.add_branch(GREEDY, 30, stop=[stop])
        run_all(engine)
    assert b.finish_reason == "stop" and b.stop_hit == stop
    assert b.text == text[:cut]


def test_added_branch_mid_run_reuses_prompt(tiny_model: LlamaModel, threads: int) -> None:
    with make_engine(tiny_model, 2, 20, threads) as engine:
        first = engine.add_branch(GREEDY, 20)
        for _ in range(7):
            engine.step()
        decoded_before = engine.prompt_tokens_decoded
        late = engine.add_branch(GREEDY, 20)
        run_all(engine)
        assert engine.prompt_tokens_decoded == decoded_before  # the prompt was not re-decoded
    assert late.tokens == first.tokens


def test_fork_shares_the_past_and_continues_identically_when_greedy(
    tiny_model: LlamaModel, threads: int
) -> None:
    with make_engine(tiny_model, 3, 24, threads) as engine:
        parent = engine.add_branch(GREEDY, 24)
        for _ in range(10):
            engine.step()
        child = engine.fork(parent)
        sampled = engine.fork(parent, sampling=Sampling(temperature=1.5, seed=7))
        at_fork = parent.text
        assert child.tokens == parent.tokens and child.parent == parent.id
        run_all(engine)
        assert child.tokens == parent.tokens
        assert sampled.tokens[:10] == parent.tokens[:10]
        assert sampled.text.startswith(at_fork) and parent.text.startswith(at_fork)
        assert sampled.tokens != parent.tokens


def test_inject_continues_as_if_the_text_were_in_the_prompt(
    tiny_model: LlamaModel, threads: int
) -> None:
    with make_engine(tiny_model, 1, 8, threads) as engine:
        b = engine.add_branch(GREEDY, 8)
        run_all(engine)
        assert b.finish_reason == "length"
        forced = engine.inject(b, " Wait", max_tokens=16)
        run_all(engine)
        after = b.tokens[8:]
    assert b.text.count(" Wait") >= 1 and forced
    prompt = tiny_model.tokenize(PROMPT) + b.tokens[:8] + forced
    plan = plan_for(tiny_model, len(prompt), 8, 1)
    with BranchEngine.open(tiny_model, plan, n_threads=threads) as fresh:
        fresh.set_prompt(prompt)
        ref = fresh.add_branch(GREEDY, 8)
        run_all(fresh)
    assert after == ref.tokens[: len(after)]


def test_inject_after_a_stop_string_drops_the_stop_tokens_from_the_kv(
    tiny_model: LlamaModel, threads: int
) -> None:
    """A stop string over several tokens has all but its last decoded when it is found; text
    forced after it ("Wait" after a `</think>`) must follow the kept text, not the stop's first
    tokens, as if the model had never written them."""
    with make_engine(tiny_model, 1, 30, threads) as engine:
        ref = engine.add_branch(GREEDY, 30)
        run_all(engine)
    pieces = [tiny_model.token_bytes(t).decode("utf-8") for t in ref.tokens]
    assert "".join(pieces) == ref.text
    k = next(i for i in range(3, 25) if pieces[i] and pieces[i + 1] and pieces[i + 2])
    stop = pieces[k][-1] + pieces[k + 1] + pieces[k + 2][:1]  # three tokens, the first partly
    cut = ref.text.find(stop)
    start = len("".join(pieces[:k]))
    assert start <= cut < start + len(pieces[k])  # the stop begins inside token k
    with make_engine(tiny_model, 1, 30, threads) as engine:
        b = engine.add_branch(GREEDY, 30, stop=[stop])
        run_all(engine)
        assert b.stop_hit == stop and b.text == ref.text[:cut]
        forced = engine.inject(b, " Wait", max_tokens=b.n_tokens + 8)
        run_all(engine)
        after = b.tokens[k + 3 :]
    kept = tiny_model.tokenize(ref.text[start:cut] + " Wait", add_special=False)
    assert forced == kept  # token k's kept text, then the forced text
    assert b.text.startswith(ref.text[:cut] + " Wait")
    prompt = tiny_model.tokenize(PROMPT) + ref.tokens[:k] + forced
    plan = plan_for(tiny_model, len(prompt), 8, 1)
    with BranchEngine.open(tiny_model, plan, n_threads=threads) as fresh:
        fresh.set_prompt(prompt)
        expected = fresh.add_branch(GREEDY, 8)
        run_all(fresh)
    assert after and after == expected.tokens[: len(after)]


def test_released_slots_are_reused(tiny_model: LlamaModel, threads: int) -> None:
    with make_engine(tiny_model, 2, 6, threads) as engine:
        a = engine.add_branch(GREEDY, 6)
        engine.add_branch(GREEDY, 6)
        with pytest.raises(ResourceError):
            engine.add_branch(GREEDY, 6)
        engine.release(a)
        c = engine.add_branch(GREEDY, 6)
        run_all(engine)
        assert c.tokens == a.tokens[: len(c.tokens)] or c.n_tokens == 6


def test_finished_branches_leave_no_gap_and_change_no_tokens(
    tiny_model: LlamaModel, threads: int
) -> None:
    """llama.cpp decodes only consecutive sequence ids in one pass, so the engine moves live
    branches past finished ones; a move is a KV copy and must not change a single token."""
    samplings = [Sampling(temperature=1.0, seed=s) for s in range(6)]
    n = 24
    with make_engine(tiny_model, 7, n, threads) as engine:  # 6 and a fork
        ref = [engine.add_branch(s, n) for s in samplings]
        for _ in range(4):
            engine.step()
        ref_fork = engine.fork(ref[1], GREEDY, 8)
        run_all(engine)
        assert engine.kv_moves == 0  # nothing finished early, nothing moved
    with make_engine(tiny_model, 7, n, threads) as engine:
        bs = [engine.add_branch(s, n) for s in samplings]
        for _ in range(4):
            engine.step()
        engine.finish(bs[1])
        engine.finish(bs[3])  # kept: a fork or a forced continuation may still need them
        engine.step()
        live = sorted(b.seq for b in bs if not b.done)
        assert live == list(range(live[0], live[0] + len(live)))
        assert engine.kv_moves > 0
        fork = engine.fork(bs[1], GREEDY, 8)  # its KV was moved out of the way, not dropped
        run_all(engine)
        for i in (0, 2, 4, 5):
            assert bs[i].tokens == ref[i].tokens
        assert fork.tokens == ref_fork.tokens


def test_logprobs_are_normalized_top_k(tiny_model: LlamaModel, threads: int) -> None:
    with make_engine(tiny_model, 1, 6, threads, logprobs=5) as engine:
        b = engine.add_branch(GREEDY, 6)
        run_all(engine)
    assert len(b.logprobs) == 6
    for lp in b.logprobs:
        assert lp.top_tokens[0] == lp.token  # greedy picks the most likely token
        assert list(lp.top_logprobs) == sorted(lp.top_logprobs, reverse=True)
        assert lp.logprob <= 0 and math.isclose(lp.logprob, lp.top_logprobs[0], abs_tol=1e-5)
        assert sum(math.exp(x) for x in lp.top_logprobs) <= 1.0 + 1e-5


def test_incremental_utf8_decoding_of_split_characters(tiny_model: LlamaModel) -> None:
    text = "naïve 😀 façade"
    tokens = tiny_model.tokenize(text, add_special=False)
    pieces = [tiny_model.token_bytes(t) for t in tokens]
    assert any(_is_partial_utf8(p) for p in pieces)  # the vocab really splits characters
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    assert "".join(decoder.decode(p) for p in pieces) == text


def _is_partial_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


@pytest.mark.parametrize(
    ("change", "memory_limit", "message"),
    [
        ({"max_branches": 300}, None, "concurrent sequences"),
        ({"max_new_tokens": 100_000}, None, "context window"),
        ({}, 1024, "GiB"),
    ],
)
def test_impossible_requests_are_refused_before_llama_cpp(
    change: dict[str, int], memory_limit: int | None, message: str
) -> None:
    args = {
        "n_prompt": 50,
        "max_new_tokens": 100,
        "max_branches": 4,
        "n_ctx_train": 8192,
        "kv_bytes_per_token": 20_000,
    } | change
    with pytest.raises(ResourceError, match=message):
        plan_context(ContextRequest(**args), memory_limit=memory_limit)


def test_context_is_sized_per_sequence(tiny_model: LlamaModel, threads: int) -> None:
    with make_engine(tiny_model, 4, 100, threads) as engine:
        lib = tiny_model.lib
        assert lib.llama_n_seq_max(engine.ctx) == 6  # prompt, 4 branches, a spare
        assert engine.capacity == 4
        assert lib.llama_n_ctx_seq(engine.ctx) >= engine.plan.n_ctx_seq


def test_context_tuning_levers_run_and_chunk_the_prompt(
    tiny_model: LlamaModel, threads: int
) -> None:
    import dataclasses

    from reasoncli.engine.branches import ContextTuning
    from reasoncli.errors import ReasonError

    prompt = tiny_model.tokenize(PROMPT)
    # n_batch 8: smaller than the prompt and than 4 rows
    plan = dataclasses.replace(plan_for(tiny_model, len(prompt), 6, 4), n_batch=8)
    # f16 by name: q8_0 needs a head size that is a multiple of 32, and the tiny model's is 16.
    tuning = ContextTuning(n_ubatch=4, type_k="f16", type_v="f16", kv_unified=True)
    with BranchEngine.open(tiny_model, plan, n_threads=threads, tuning=tuning) as engine:
        engine.set_prompt(prompt)
        assert engine.decode_calls == math.ceil(len(prompt) / 8)
        branches = [engine.add_branch(Sampling(seed=i), 6) for i in range(4)]
        run_all(engine)
    assert all(b.done and b.n_tokens > 0 for b in branches)
    assert engine.prompt_tokens_decoded == len(prompt)
    with pytest.raises(ReasonError, match="unknown ggml type"):
        BranchEngine.open(tiny_model, plan, n_threads=threads, tuning=ContextTuning(type_k="q9"))


def test_first_tokens_come_from_the_kept_prompt_logits_as_llama_cpps_sampler_would_pick(
    tiny_model: LlamaModel, threads: int
) -> None:
    """A branch's first step decodes nothing: it samples from the logits kept at the end of the
    prompt, and picks what llama_sampler_sample picks from the same logits with the same chain."""
    from reasoncli.engine.sampling import build_sampler_chain

    prompt = tiny_model.tokenize(PROMPT)
    samplings = [
        GREEDY,
        Sampling(temperature=1.0, seed=7),
        Sampling(temperature=0.8, top_k=5, seed=3, repeat_penalty=1.3),
    ]
    with make_engine(tiny_model, 3, 4, threads) as engine:
        engine.set_prompt(prompt)
        calls = engine.decode_calls
        branches = [engine.add_branch(s, 4) for s in samplings]
        engine.step()
        assert engine.decode_calls == calls  # no row for the prompt's last token again
        firsts = [b.tokens[0] for b in branches]
    with make_engine(tiny_model, 1, 4, threads) as plain:
        plain.set_prompt(prompt)  # its last decode ends with the prompt's last token
        lib = tiny_model.lib
        for sampling, first in zip(samplings, firsts, strict=True):
            chain = build_sampler_chain(lib, sampling, tiny_model.n_vocab)
            try:
                assert lib.llama_sampler_sample(chain, plain.ctx, -1) == first
            finally:
                lib.llama_sampler_free(chain)
