"""What a run over one question holds however it combines branches: `ParallelRun` (votes) and
`SearchRun` (step-level search) share it, so the prompt is opened, timed and costed, and Ctrl-C
reported, one way."""

from __future__ import annotations

import time
from collections.abc import Iterable

from reasoncli.engine.protocols import Engine, EngineSize, ModelSession
from reasoncli.events import BranchFinished, EventSink, Note
from reasoncli.strategies.builder import Cost, ResultBuilder

INTERRUPTED_NOTE = "interrupted: showing what was computed so far"


class QuestionRun:
    """The question, its session and event sink, when the run started, and the engine with the
    question's prompt decoded once (`_open_engine`)."""

    engine: Engine
    interrupted: bool
    prompt_tokens: int
    prompt_s: float
    """From the run's start until the prompt was decoded: rendering, tokenizing, the engine."""

    def __init__(
        self, strategy: str, question: str, session: ModelSession, emit: EventSink
    ) -> None:
        self.strategy = strategy
        self.question = question
        self.session = session
        self.emit = emit
        self.started = time.perf_counter()

    def _open_engine(self, size: EngineSize) -> Engine:
        """Render and tokenize the question, and open an engine of `size` on it."""
        session = self.session
        prompt = session.prompt_tokens(session.prompt_text(self.question))
        self.prompt_tokens = len(prompt)
        self.engine = session.open_engine(prompt, size)
        self.prompt_s = time.perf_counter() - self.started
        return self.engine

    def _cost(self, generate_s: float) -> Cost:
        """What this run's engine has cost so far."""
        engine = self.engine
        return Cost(
            self.prompt_tokens,
            self.prompt_s,
            generate_s,
            engine.prompt_tokens_decoded,
            engine.decode_calls,
        )

    def _builder(self) -> ResultBuilder:
        return ResultBuilder(self.strategy, self.question, self.session, started=self.started)

    def _running(self) -> Iterable[tuple[int, int]]:
        """(branch id, tokens so far) of each branch still being decoded."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Ctrl-C (or SIGTERM, SIGHUP): every running branch ends as `interrupted`, with no
        answer, so the last frame of a view and the JSONL say what the result will say."""
        self.interrupted = True
        for branch_id, tokens in self._running():
            self.emit(BranchFinished(branch_id, None, "interrupted", tokens))
        self.emit(Note(INTERRUPTED_NOTE, "interrupt"))
