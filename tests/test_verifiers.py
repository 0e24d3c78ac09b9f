"""Verifiers on real llama.cpp: the confidence score, a model as judge (P(Yes)), names."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from reasoncli.engine.branches import TokenLogprobs
from reasoncli.engine.protocols import EngineSize
from reasoncli.engine.sampling import Sampling
from reasoncli.errors import UsageError
from reasoncli.session import Session
from reasoncli.verifiers import (
    Candidate,
    ConfidenceVerifier,
    JudgeVerifier,
    answer_token_ids,
    check_verifier,
    make_verifier,
    yes_probability,
)

GREEDY = Sampling(temperature=0.0)


def test_confidence_verifier_on_real_logprobs(session: Session) -> None:
    engine = session.open_engine(
        session.prompt_tokens(session.prompt_text("q")),
        EngineSize(max_branches=2, max_tokens=6, logprobs=5),
    )
    try:
        branches = [engine.add_branch(session.sampling.with_seed(i), 6) for i in range(2)]
        for _ in engine.run():
            pass
        cands = [Candidate(b.text, tuple(b.logprobs)) for b in branches] + [Candidate("no lp")]
        scores = ConfidenceVerifier().score("q", cands)
    finally:
        engine.close()
    assert all(0 < s < 1 for s in scores[:2]) and scores[2] == 0.0


def test_yes_and_no_token_variants(session: Session) -> None:
    model = session.model
    yes = answer_token_ids(model, ("Yes", " Yes", "yes", " yes"))
    assert {model.token_text(t).strip() for t in yes} == {"Yes", "yes"}
    assert len(yes) == 4  # with and without the leading space are different tokens
    lp = TokenLogprobs(0, 0.0, (1, 2, 3), (math.log(0.3), math.log(0.1), math.log(0.2)))
    assert yes_probability(lp, yes=(1, 2), no=(3,)) == pytest.approx(0.4 / 0.6)
    assert yes_probability(lp, yes=(9,), no=(8,)) == 0.5  # neither is possible: no opinion


def test_self_verifier_is_p_yes_under_the_full_distribution(session: Session) -> None:
    verifier = make_verifier("self", session)
    assert isinstance(verifier, JudgeVerifier) and not verifier.needs_logprobs
    try:
        cands = [Candidate("6*7 = 42. The answer is 42."), Candidate("The answer is 41.")]
        together = verifier.score("What is 6*7?", cands)
        engine = verifier._engine
        both = list(verifier.last_costs)
        prompt = verifier.tokens - sum(both)
        alone = [verifier.score("What is 6*7?", [c])[0] for c in cands]
        assert verifier._engine is engine  # the question's prefix is reused, not re-decoded
        # each candidate costs the same alone or batched (its text); the judge prompt was read
        # once
        assert verifier.tokens == prompt + 2 * sum(both)
        assert prompt == len(verifier._prompt("What is 6*7?")[0])
        assert both[0] > both[1] > 1
        assert all(0 < s < 1 for s in together)
        assert together == pytest.approx(alone, abs=1e-3)
        # The same judge prompt through a plain engine that keeps every token's logprob.
        tokens, suffix = verifier._prompt("What is 6*7?")
        n_vocab = session.model.n_vocab
        plain = session.open_engine(
            tokens, EngineSize(max_branches=1, max_tokens=256, logprobs=n_vocab)
        )
        try:
            b = plain.add_branch(GREEDY, 1)
            plain.inject(b, cands[0].text + suffix)
            plain.step()
            lp = b.logprobs[0]
            probs = dict(zip(lp.top_tokens, map(math.exp, lp.top_logprobs), strict=True))
        finally:
            plain.close()
        p_yes = sum(probs[t] for t in verifier.yes)
        p_no = sum(probs[t] for t in verifier.no)
        assert together[0] == pytest.approx(p_yes / (p_yes + p_no), abs=1e-3)
    finally:
        verifier.close()


def test_another_model_as_verifier_and_unknown_names(session: Session, tiny_gguf: Path) -> None:
    check_verifier("confidence")
    check_verifier("smollm2")  # an alias in the shipped registry
    with pytest.raises(UsageError, match="unknown verifier 'selff'.*did you mean self"):
        check_verifier("selff")
    with pytest.raises(UsageError, match="unknown verifier"):
        make_verifier("no-such-model", session)
    verifier = make_verifier(str(tiny_gguf), session)  # a .gguf path: loaded as its own model
    try:
        assert verifier.judge is not session  # type: ignore[attr-defined]
        scores = verifier.score("q", [Candidate("a" * 50), Candidate("")])
        assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)
    finally:
        verifier.close()


def test_long_and_growing_candidates_reuse_or_regrow_the_judge(session: Session) -> None:
    """Search scores ever longer partial solutions of one question: the judge's engine grows
    when a candidate no longer fits, and scores stay probabilities."""
    verifier = make_verifier("self", session)
    try:
        first = verifier.score("q", [Candidate("step one")])
        small = verifier._engine  # type: ignore[attr-defined]
        longer = verifier.score("q", [Candidate("step one " * 200)] * 3)
        assert verifier._engine is not small  # type: ignore[attr-defined]
        assert all(0 < s < 1 for s in first + longer)
        assert verifier.score("q", []) == []
    finally:
        verifier.close()
