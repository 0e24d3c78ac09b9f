"""Verifiers score candidate solutions (whole or partial) for best-of-n and search strategies.

The API that `best-of-n`, `beam` and `dvts` rely on:

    check_verifier(options.verifier)                  # in Strategy.check: UsageError (exit 2)
    verifier = make_verifier(options.verifier, session)
    scores = verifier.score(question, [Candidate(text, logprobs), ...])
    verifier.close()

- `score` returns one float per candidate, in [0, 1], higher is better, so scores from
  different verifiers read the same way. It may be called many times per question, with
  partial solutions (search calls it after every step); a judge model keeps the question's
  prompt decoded between calls.
- `Candidate.text` is what the policy model wrote after its prompt. `Candidate.logprobs` is
  only read when `verifier.needs_logprobs`: open the generating engine with `logprobs=k` then.

Verifiers, by `--verifier` name:
- `confidence`: no extra compute; the candidate's mean DeepConf token confidence.
- `self`: the generating model, asked in a fresh prompt whether the solution is correct;
  the score is P(Yes) / (P(Yes) + P(No)) from its next-token distribution.
- a model name or alias from the registry, or a `.gguf` path: that model as the judge,
  loaded once and scored the same way.
- `orm:NAME`: the same judge, named for what it is, an outcome reward model (e.g. one that
  `reason train verifier` fine-tuned on this exact prompt) scoring a whole solution.
- `prm:NAME`: a process reward model: the same judge, but `per_step` is set, so `best-of-n`
  scores every step prefix of a finished solution (`solution_steps.step_prefixes`) and combines
  them with `--aggregate` (`aggregate_scores`). Search already scores a partial solution after
  every step, so there a PRM scores the text it is given.
`NAME` may also be `self` after a prefix. A trained verifier is a judge model: only how it is
applied differs, and it must see exactly the prompt it was trained on (`judge_prompt_parts`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from reasoncli.confidence import token_confidence
from reasoncli.engine.branches import BranchEngine, TokenLogprobs
from reasoncli.engine.context import DecodeContext
from reasoncli.engine.protocols import ModelSession
from reasoncli.engine.sampling import Sampling
from reasoncli.engine.sizing import ContextPlan, ContextRequest, plan_context
from reasoncli.errors import ModelError, UsageError
from reasoncli.options import AGGREGATES

if TYPE_CHECKING:
    from reasoncli.models.catalog import Catalog
    from reasoncli.session import Session

BUILTIN_VERIFIERS = ("confidence", "self")
VERIFIER_KINDS = ("orm", "prm")  # `KIND:NAME` prefixes: outcome or process reward model


@dataclass(frozen=True)
class Candidate:
    """A solution or partial solution to score; logprobs are present when the engine kept them."""

    text: str
    logprobs: Sequence[TokenLogprobs] = field(default_factory=tuple)


class Verifier(Protocol):
    name: str
    needs_logprobs: bool
    per_step: bool  # a PRM: score every step prefix of a whole solution, then aggregate
    tokens: int  # tokens its model has read so far (prompts and candidates): its compute
    last_costs: list[int]
    """What each candidate of the last `score` call cost to read, in its order. With
    `prompt_tokens`, what the judge prompt a question's candidates share cost to read once, a
    run of k of N candidates can be costed exactly: the prompt once, plus its candidates'."""
    prompt_tokens: int

    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]: ...

    def close(self) -> None: ...


class ConfidenceVerifier:
    """No extra compute: the candidate's mean token confidence (DeepConf), squashed to (0, 1)."""

    name = "confidence"
    needs_logprobs = True
    per_step = False
    tokens = 0  # reads the policy's own log-probabilities: no forward pass of its own
    prompt_tokens = 0

    def __init__(self) -> None:
        self.last_costs: list[int] = []

    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        self.last_costs = [0] * len(candidates)
        return [self._one(c) for c in candidates]

    @staticmethod
    def _one(candidate: Candidate) -> float:
        confs = [token_confidence(lp.top_logprobs) for lp in candidate.logprobs]
        confs = [c for c in confs if not math.isnan(c)]
        if not confs:
            return 0.0
        mean = sum(confs) / len(confs)
        return 1.0 - math.exp(-mean)

    def close(self) -> None:
        pass


# -- a model as judge -----------------------------------------------------------------------
JUDGE_SYSTEM = "You grade solutions to problems. Reply with Yes or No only."
JUDGE_REQUEST = (
    "Question:\n{question}\n\nProposed solution:\n{solution}\n\n"
    "Is this solution correct? Answer Yes or No."
)
# Base models (no chat template) get a raw completion prompt that ends where Yes/No goes.
JUDGE_RAW = (
    "Question: {question}\nProposed solution: {solution}\n"
    "Is this solution correct? Answer Yes or No.\nAnswer:"
)
_SOLUTION = "\x00SOLUTION\x00"  # where each candidate goes; everything before it is shared
YES_WORDS = ("Yes", " Yes", "yes", " yes", "YES", " YES")
NO_WORDS = ("No", " No", "no", " no", "NO", " NO")
GREEDY = Sampling(temperature=0.0)
MAX_JUDGE_BATCH = 8  # candidates decoded together; bounds the judge's KV memory


def answer_token_ids(model: Any, words: Sequence[str]) -> tuple[int, ...]:
    """Every token that spells one of `words` on its own ("Yes", " Yes", "▁Yes", ...).

    Tokenizers differ on whether the word after a newline or colon carries a leading space,
    so all variants are summed. A word that no single token spells falls back to its first
    token, so that a vocabulary without a "Yes" token still gives a score.
    """
    exact: list[int] = []
    first: list[int] = []
    for word in words:
        tokens = model.tokenize(word, add_special=False, parse_special=False)
        if not tokens:
            continue
        if len(tokens) == 1 or model.token_text(tokens[0]).strip() == word.strip():
            exact.append(tokens[0])
        else:
            first.append(tokens[0])
    return tuple(dict.fromkeys(exact or first))


class _JudgeEngine(BranchEngine):
    """A branch engine that records, at each sampled position, the log-probabilities of the
    judge's answer tokens under the full distribution (a top-k list may not contain them).

    It overrides the engine's per-position log-probability hook, which runs while that row's
    logits are at hand; `top_tokens` then holds the watched tokens, not a top-k.
    """

    def __init__(self, context: DecodeContext, plan: ContextPlan, *, watch: Sequence[int]) -> None:
        super().__init__(context, plan, logprobs=1)
        self.watch = np.asarray(watch, dtype=np.int64)

    def _logprobs(self, logits: np.ndarray, token: int) -> TokenLogprobs:
        logits = logits.astype(np.float64)
        peak = float(logits.max())
        lse = peak + math.log(float(np.exp(logits - peak).sum()))
        return TokenLogprobs(
            token=token,
            logprob=float(logits[token]) - lse,
            top_tokens=tuple(int(t) for t in self.watch),
            top_logprobs=tuple(float(v) - lse for v in logits[self.watch]),
        )


def aggregate_scores(scores: Sequence[float], how: str) -> float:
    """One number for a path's step scores: the last, the weakest, or their product.

    `min` and `prod` punish a path for any weak step (a PRM's view of a chain); `last` trusts
    the verifier's judgement of the whole partial solution. Non-finite scores count as 0.
    """
    clean = [s if math.isfinite(s) else 0.0 for s in scores]
    if not clean:
        return 0.0
    if how == "last":
        return clean[-1]
    if how == "min":
        return min(clean)
    if how == "prod":
        return math.prod(clean)
    raise ValueError(f"unknown aggregation {how!r}; choose one of {', '.join(AGGREGATES)}")


def judge_prompt_parts(session: Session, question: str) -> tuple[str, str]:
    """The judge prompt's text before and after the solution, for `session`'s model.

    Public so that `reason train verifier` builds the very prompt this module scores: a chat
    model gets its chat template around `JUDGE_REQUEST`, a base model the raw `JUDGE_RAW`.
    """
    if session.style.mode == "chat" and session.style.chat_template:
        request = JUDGE_REQUEST.format(question=question.strip(), solution=_SOLUTION)
        text = session.prompt_text(request, system=JUDGE_SYSTEM)
    else:
        text = JUDGE_RAW.format(question=question.strip(), solution=_SOLUTION)
    prefix, _, suffix = text.partition(_SOLUTION)
    return prefix, suffix


def yes_probability(lp: TokenLogprobs, yes: Sequence[int], no: Sequence[int]) -> float:
    """P(Yes) / (P(Yes) + P(No)) from the recorded log-probabilities; 0.5 when both vanish."""
    probs = dict(zip(lp.top_tokens, (math.exp(v) for v in lp.top_logprobs), strict=True))
    p_yes = math.fsum(probs.get(t, 0.0) for t in yes)
    p_no = math.fsum(probs.get(t, 0.0) for t in no)
    total = p_yes + p_no
    return p_yes / total if total > 0 and math.isfinite(total) else 0.5


class JudgeVerifier:
    """A model asked "Is this solution correct? Answer Yes or No." for each candidate.

    The judge prompt is split at the solution: the part before it (instructions and question)
    is decoded once into an engine that is kept while the question stays the same, and each
    candidate is a branch that copies that prefix and decodes only its own solution text.
    Candidates are decoded together in one batch and need a single step each.
    `per_step` marks a PRM; scoring is the same, the strategy decides what text to send.
    """

    needs_logprobs = False

    def __init__(
        self, judge: Session, *, name: str, owns_session: bool = False, per_step: bool = False
    ) -> None:
        self.name = name
        self.per_step = per_step
        self.judge = judge
        self._owns = owns_session
        model = judge.model
        self.yes = answer_token_ids(model, YES_WORDS)
        self.no = answer_token_ids(model, NO_WORDS)
        if not self.yes or not self.no or set(self.yes) & set(self.no):
            raise ModelError(f"verifier {name!r}: cannot find Yes/No tokens in its vocabulary")
        self.tokens = 0
        self.last_costs: list[int] = []
        self.prompt_tokens = 0  # the judge prompt of the current question, read once
        self._engine: BranchEngine | None = None
        self._question: str | None = None
        self._prompt_cache: tuple[str, list[int], str] | None = None
        self._room = 0  # tokens a branch may inject in the current engine

    # -- prompts ----------------------------------------------------------------------------
    def _split_prompt(self, question: str) -> tuple[str, str]:
        return judge_prompt_parts(self.judge, question)

    def _solution(self, text: str, limit: int) -> str:
        """The candidate's text, keeping its end if it is too long for the judge's context."""
        text = text.strip() or "(no solution)"
        tokens = self.judge.model.tokenize(text, add_special=False, parse_special=False)
        if len(tokens) <= limit:
            return text
        return "..." + self.judge.model.detokenize(tokens[-limit:])

    # -- engine -----------------------------------------------------------------------------
    def _engine_for(self, question: str, slots: int, room: int) -> BranchEngine:
        """The cached engine for `question` if it fits, else a new one with some headroom, so
        that search (growing partial solutions every step) rarely re-decodes the prefix."""
        engine = self._engine
        if (
            engine is not None
            and self._question == question
            and engine.capacity >= slots
            and self._room >= room
        ):
            return engine
        self._close_engine()
        tokens, _ = self._prompt(question)
        model = self.judge.model
        room = max(room + room // 2, 256)
        if model.n_ctx_train:
            room = max(1, min(room, model.n_ctx_train - len(tokens) - 8))
        request = ContextRequest(
            n_prompt=len(tokens),
            max_new_tokens=room,
            # a full batch even for one candidate: more follow (a widened pilot, the next
            # step's branches), and a smaller engine would be rebuilt, its prompt read again
            max_branches=max(slots, MAX_JUDGE_BATCH),
            n_ctx_train=model.n_ctx_train,
            kv_bytes_per_token=model.kv_bytes_per_token,
            weights_bytes=model.size_bytes,
            slack_tokens=8,
        )
        plan = plan_context(request)
        # A candidate is injected whole and decoded in one step: the batch must hold it.
        plan = replace(plan, n_batch=max(plan.n_batch, room + 2))
        options = self.judge.options
        context = DecodeContext(
            model, plan, n_threads=options.threads, flash_attn=options.flash_attn
        )
        engine = _JudgeEngine(context, plan, watch=self.yes + self.no)
        try:
            engine.set_prompt(tokens)
        except BaseException:
            engine.close()
            raise
        self.tokens += engine.prompt_tokens_decoded
        self.prompt_tokens = engine.prompt_tokens_decoded
        self._engine, self._question, self._room = engine, question, room
        return engine

    def _close_engine(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
            self._question = None

    # -- scoring ----------------------------------------------------------------------------
    def score(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        scores: list[float] = []
        self.last_costs = []
        for chunk in _chunks(list(candidates), MAX_JUDGE_BATCH):
            scores.extend(self._score_chunk(question, chunk))
        return scores

    def _score_chunk(self, question: str, chunk: Sequence[Candidate]) -> list[float]:
        model = self.judge.model
        prefix, suffix = self._prompt(question)
        limit = 1 << 30
        if model.n_ctx_train:
            limit = max(16, model.n_ctx_train - len(prefix) - 64)
        texts = [self._solution(c.text, limit) + suffix for c in chunk]
        lengths = [len(model.tokenize(t, add_special=False, parse_special=True)) for t in texts]
        engine = self._engine_for(question, len(chunk), max(lengths) + 4)
        branches = []
        try:
            for text in texts:
                b = engine.add_branch(GREEDY, max_tokens=1)
                cost = len(engine.inject(b, text))  # the candidate: what this branch decodes
                self.tokens += cost
                self.last_costs.append(cost)
                branches.append(b)
            while engine.live:  # one step: every branch samples its single token
                engine.step()
            return [yes_probability(b.logprobs[-1], self.yes, self.no) for b in branches]
        finally:
            for b in branches:
                engine.release(b)

    def _prompt(self, question: str) -> tuple[list[int], str]:
        """(prefix tokens, suffix text) of the judge prompt for `question`, cached."""
        if self._prompt_cache is None or self._prompt_cache[0] != question:
            prefix, suffix = self._split_prompt(question)
            self._prompt_cache = (question, self.judge.prompt_tokens(prefix), suffix)
        _, tokens, suffix = self._prompt_cache
        return tokens, suffix

    def close(self) -> None:
        self._close_engine()
        if self._owns:
            self.judge.close()


def _chunks(items: list[Candidate], size: int) -> Iterator[list[Candidate]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- construction ---------------------------------------------------------------------------
def split_verifier(name: str, catalog: Catalog | None = None) -> tuple[str | None, str]:
    """(kind, model) of a `--verifier`: ("prm", "x") for `prm:x`, (None, name) otherwise.

    A name that is itself a file or a registry entry is never split, so a path or model name
    with a colon in it keeps working. Raises UsageError for `prm:` with nothing after it and
    for a prefix that is not a kind.
    """
    head, sep, rest = name.partition(":")
    if not sep or Path(name).expanduser().is_file():
        return None, name
    if (catalog or _catalog()).find(name) is not None:
        return None, name
    if head not in VERIFIER_KINDS:
        raise UsageError(
            f"unknown verifier kind {head!r} in {name!r}; use {', '.join(VERIFIER_KINDS)} "
            "(e.g. prm:MODEL) or a plain model name"
        )
    if not rest.strip():
        raise UsageError(f"--verifier {name} needs a model after {head}: (a name or .gguf path)")
    if rest == "confidence":
        raise UsageError(f"--verifier {name}: {head}: takes a judge model, not confidence")
    return head, rest


def _catalog() -> Catalog:
    from reasoncli.models.catalog import load_catalog

    return load_catalog()


def check_verifier(name: str) -> None:
    """Reject a `--verifier` that is neither built in, nor in the registry, nor a .gguf file,
    optionally after `orm:`/`prm:`.

    Cheap (reads models.yaml only), so strategies call it in `check()` before any model loads.
    """
    if name in BUILTIN_VERIFIERS:
        return
    catalog = _catalog()
    kind, model = split_verifier(name, catalog)
    if kind is not None and model == "self":
        return
    if catalog.find(model) is not None or Path(model).expanduser().is_file():
        return
    known = [*BUILTIN_VERIFIERS, *(s.name for s in catalog.specs())]
    if kind is not None:
        known = [f"{kind}:{k}" for k in known if k != "confidence"]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UsageError(
        f"unknown verifier {name!r}{hint}; use confidence, self, a model from "
        "`reason models list` or a path to a .gguf file, optionally as orm:NAME or prm:NAME"
    )


def make_verifier(name: str, session: ModelSession) -> Verifier:
    """The verifier `--verifier NAME` asks for; the caller closes it.

    `self` shares `session`'s loaded model; another model is loaded here with the same
    threads and GPU settings and is freed by `close()`. `orm:`/`prm:` name the same judges
    (see the module docstring); `prm:` sets `per_step`.
    """
    from reasoncli.session import Session

    if name == "confidence":
        return ConfidenceVerifier()
    check_verifier(name)
    catalog = _catalog()
    kind, model_name = split_verifier(name, catalog)
    per_step = kind == "prm"
    if model_name == "self":
        if not isinstance(session, Session):  # a remote model: its weights are not here
            raise UsageError(
                f"--verifier {name} reads the model's own next-token distribution, which a "
                "remote server does not give; use --verifier confidence or a local model name"
            )
        return JudgeVerifier(session, name=name, per_step=per_step)
    from reasoncli.models.gguf_file import read_gguf_info
    from reasoncli.models.resolve import resolve_model

    try:
        resolved = resolve_model(model_name, catalog)
        read_gguf_info(resolved.path)
        judge = Session.load(resolved, session.options)
    except ModelError as exc:
        raise type(exc)(f"verifier {name!r}: {exc}") from None
    label = f"{kind}:{judge.name}" if kind else judge.name
    try:
        return JudgeVerifier(judge, name=label, owns_session=True, per_step=per_step)
    except BaseException:
        judge.close()
        raise
