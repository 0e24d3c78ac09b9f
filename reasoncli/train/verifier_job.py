"""`reason train verifier` as a library: label, train, export, check on held-out, register.

The verifier is the base model fine-tuned so that the judge prompt of `reasoncli.verifiers`
answers Yes for correct solutions (ORM) or for step prefixes that still lead to the answer
(PRM): a Yes/No head on the LM logits, which llama.cpp runs as it is, so the exported GGUF
plugs into `--verifier orm:NAME` / `prm:NAME` with no new inference code. Training prompts are
built and tokenized by llama.cpp from the same `judge_prompt_parts`, so train and inference
see identical tokens. The held-out check scores the held-out solutions through the exported
GGUF and `JudgeVerifier` itself, next to the untrained base model as a judge.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reasoncli.engine.protocols import EngineSize
from reasoncli.errors import UsageError
from reasoncli.models.catalog import load_catalog
from reasoncli.models.gguf_file import read_gguf_info
from reasoncli.models.resolve import ResolvedModel, resolve_model
from reasoncli.train.deps import check_train_deps, import_stack
from reasoncli.train.policy import check_trainable
from reasoncli.train.progress import TrainReporter
from reasoncli.train.registry import check_out_name, trained_spec, write_entry
from reasoncli.train.request import VerifierRequest
from reasoncli.train.settings import checkpoint_step, latest_checkpoint
from reasoncli.train.verifier_data import (
    Example,
    Graded,
    LabelCache,
    mc_step_labels,
    orm_examples,
    pending_prefixes,
    prm_examples,
    read_rollouts,
    split_heldout,
)

__all__ = ["KINDS", "VerifierJob", "VerifierRequest", "prepare_verifier"]

KINDS = ("orm", "prm")
LABELS_FILE = "labels.jsonl"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"


def prepare_verifier(request: VerifierRequest) -> VerifierJob:
    """Every cheap check: flags, model, name, rollouts; nothing heavy is loaded."""
    check_train_deps()
    r = request
    if r.kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not {r.kind!r}")
    if r.export not in ("q8_0", "f16"):
        raise UsageError(f"--export must be q8_0 or f16, not {r.export!r}")
    for name, value in (("--steps", r.steps), ("--batch-size", r.batch_size)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1")
    if r.mc_completions < 1:
        raise UsageError("--mc-completions must be at least 1")
    catalog = load_catalog()
    model = r.model or catalog.default.name
    resolved = resolve_model(model, catalog)
    check_trainable(read_gguf_info(resolved.path), model)
    out = r.out or f"{resolved.spec.name}-{r.kind}"
    run_dir = (r.run_dir or Path("runs") / out).absolute()
    check_out_name(out, catalog, force=r.force, run_dir=run_dir)
    train, held = split_heldout(read_rollouts(list(r.rollouts)), r.heldout)
    policy = r.policy or next((g.policy for g in train if g.policy), None) or model
    policy_model = resolve_model(policy, catalog) if r.kind == "prm" else None
    return VerifierJob(r, resolved, policy_model, out, run_dir, train, held)


@dataclass
class VerifierJob:
    request: VerifierRequest
    base: ResolvedModel
    policy: ResolvedModel | None
    out: str
    run_dir: Path
    train: list[Graded]
    heldout: list[Graded]

    def run(self, reporter: TrainReporter) -> dict[str, Any]:
        import_stack()
        from reasoncli.session import Session, SessionOptions
        from reasoncli.verifiers import NO_WORDS, YES_WORDS, answer_token_ids

        r = self.request
        self.run_dir.mkdir(parents=True, exist_ok=True)
        settings = {**asdict(r), "rollouts": [str(p) for p in r.rollouts], "out": self.out}
        settings["run_dir"] = str(self.run_dir)
        (self.run_dir / RUN_FILE).write_text(json.dumps(settings, indent=2) + "\n", "utf-8")
        options = SessionOptions(threads=r.threads)
        judge = Session.load(self.base, options)
        try:
            yes = answer_token_ids(judge.model, YES_WORDS)
            no = answer_token_ids(judge.model, NO_WORDS)
            if r.kind == "prm":
                examples = self._prm_examples(Session, options, reporter)
            else:
                examples = orm_examples(self.train)
            if not examples:
                raise UsageError("the rollouts give no training examples")
            rows = [{"input_ids": _judge_ids(judge, e), "label": e.label} for e in examples]
            pad = judge.model.lib.llama_vocab_eos(judge.model.vocab)
        finally:
            judge.close()
        reporter.status(f"{len(rows)} {r.kind.upper()} examples from {len(self.train)} solutions")
        step, interrupted = self._train(rows, yes, no, pad, reporter)
        summary: dict[str, Any] = {
            "model": self.out,
            "kind": r.kind,
            "source": self.base.spec.name,
            "run_dir": str(self.run_dir),
            "examples": len(rows),
            "positive_share": round(sum(e.label for e in examples) / len(rows), 4),
            "step": step,
            "steps": r.steps,
            "interrupted": interrupted,
        }
        if interrupted:
            return summary
        gguf = self.run_dir / f"{self.out}-{r.export.upper()}.gguf"
        summary["gguf"] = str(gguf)
        reporter.status("checking the export on the held-out solutions")
        summary["heldout"] = self._evaluate(gguf, options)
        kind = "outcome" if r.kind == "orm" else "process"
        description = (
            f"{kind} reward model ({r.kind}:{self.out}) trained from {self.base.spec.name} on "
            f"{len(self.train)} graded solutions (reason train verifier)"
        )
        summary["registered_in"] = str(
            write_entry(trained_spec(self.out, self.base.spec, gguf, description))
        )
        (self.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
        return summary

    # -- steps ------------------------------------------------------------------------------
    def _prm_examples(
        self, session_cls: Any, options: Any, reporter: TrainReporter
    ) -> list[Example]:
        r = self.request
        assert self.policy is not None
        cache = LabelCache(self.run_dir / LABELS_FILE)
        todo = pending_prefixes(self.train, cache)
        if todo:
            reporter.status(
                f"labelling {len(todo)} step prefixes with {r.mc_completions} completions each "
                f"by {self.policy.spec.name}"
            )
            policy = session_cls.load(self.policy, options)
            try:
                complete = batched_completer(policy, r.mc_max_tokens, r.seed)
                shown = 0
                for done in mc_step_labels(todo, cache, complete, r.mc_completions):
                    if done // 50 > shown // 50 or done == len(todo):  # done moves by a chunk
                        reporter.status(f"labelled {done}/{len(todo)} step prefixes")
                        shown = done
            finally:
                policy.close()
        return prm_examples(self.train, cache)

    def _train(
        self, rows: list[dict[str, Any]], yes: Any, no: Any, pad: int, reporter: TrainReporter
    ) -> tuple[int, bool]:
        from reasoncli.train.callbacks import GracefulInterrupt
        from reasoncli.train.policy import load_gguf
        from reasoncli.train.verifier_trainer import (
            LossCallback,
            VerifierSettings,
            build_verifier_trainer,
        )

        r = self.request
        checkpoint = latest_checkpoint(self.run_dir)
        done = checkpoint_step(checkpoint)
        if checkpoint is not None and done >= r.steps:
            # Finished (say, rerun to export again): the Trainer would run one step past
            # max_steps from a final checkpoint, so load its weights and only export.
            import torch
            from transformers import LlamaForCausalLM

            from reasoncli.train.policy import quiet_transformers

            quiet_transformers()
            reporter.status(f"already trained: exporting {checkpoint.name}")
            model = LlamaForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
            self._export(model, r.export, reporter)
            return done, False
        # The base model gives the architecture either way; on resume the Trainer loads the
        # checkpoint's weights, optimizer and step into it (a verifier checkpoint holds no
        # tokenizer, which `load_checkpoint` would need).
        reporter.status(f"loading {self.base.path.name}")
        policy = load_gguf(self.base.path, self.base.spec.chat_template)
        if checkpoint is not None:
            reporter.status(f"resuming from {checkpoint.name}")
        settings = VerifierSettings(
            steps=r.steps,
            batch_size=r.batch_size,
            learning_rate=r.learning_rate,
            warmup_steps=max(1, r.steps // 10),
            seed=r.seed,
            checkpoint_every=r.checkpoint_every,
        )
        interrupt = GracefulInterrupt(reporter)
        callback = LossCallback(reporter, interrupt)
        trainer = build_verifier_trainer(
            policy.model,
            rows,
            yes=yes,
            no=no,
            pad_id=pad,
            settings=settings,
            run_dir=self.run_dir,
            callback=callback,
        )
        with interrupt.installed():
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        step = int(trainer.state.global_step)
        if interrupt.requested and step < r.steps:
            return step, True
        self._export(trainer.accelerator.unwrap_model(trainer.model), r.export, reporter)
        return step, False

    def _export(self, model: Any, file_type: str, reporter: TrainReporter) -> None:
        from reasoncli.train.export import export_gguf

        reporter.status(f"exporting {file_type.upper()} GGUF")
        export_gguf(
            model.state_dict(),
            model.config,
            self.base.path,
            self.run_dir / f"{self.out}-{file_type.upper()}.gguf",
            file_type=file_type,
            name=self.out,
        )

    def _evaluate(self, gguf: Path, options: Any) -> dict[str, Any]:
        """AUC and best-of-group accuracy on held-out solutions: trained vs the base as judge."""
        from reasoncli.session import Session

        out: dict[str, Any] = {"solutions": len(self.heldout)}
        trained = resolve_model(str(gguf), load_catalog())
        for label, target in (("trained", trained), ("base", self.base)):
            out[label] = score_heldout(Session.load(target, options), self.heldout)
        return out


def score_heldout(session: Any, heldout: list[Graded]) -> dict[str, Any]:
    """The judge's scores for every held-out solution, summarised; closes `session`."""
    from reasoncli.verifiers import Candidate, JudgeVerifier

    verifier = JudgeVerifier(session, name=session.name, owns_session=True)
    try:
        groups: dict[str, list[Graded]] = {}
        for g in heldout:
            groups.setdefault(g.question, []).append(g)
        scored: list[tuple[float, float]] = []
        by_question: list[list[tuple[float, float]]] = []
        best = first = 0.0
        for question, items in groups.items():
            scores = verifier.score(question, [Candidate(g.text) for g in items])
            by_question.append(list(zip(scores, (g.correct for g in items), strict=True)))
            scored.extend(by_question[-1])
            best += items[max(range(len(items)), key=scores.__getitem__)].correct
            first += items[0].correct
    finally:
        verifier.close()
    n = max(1, len(groups))
    return {
        "auc": auc(scored),
        "within_question_auc": within_question_auc(by_question),
        "best_of_group_accuracy": round(best / n, 4),
        "first_sample_accuracy": round(first / n, 4),
        "questions": len(groups),
    }


def auc(pairs: list[tuple[float, float]]) -> float | None:
    """P(a correct solution outscores a wrong one), ties counting half (Mann-Whitney)."""
    return within_question_auc([pairs])


def within_question_auc(groups: list[list[tuple[float, float]]]) -> float | None:
    """P(a correct solution outscores a wrong one to the same question): what best-of-N
    needs. The pooled `auc` also rewards scoring easy questions higher than hard ones."""
    wins = pairs = 0.0
    for group in groups:
        pos = [s for s, c in group if c >= 0.5]
        neg = [s for s, c in group if c < 0.5]
        wins += sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
        pairs += len(pos) * len(neg)
    return round(wins / pairs, 4) if pairs else None


def _judge_ids(judge: Any, example: Example) -> list[int]:
    """The judge prompt's tokens as `JudgeVerifier` decodes them for this solution."""
    from reasoncli.verifiers import judge_prompt_parts

    prefix, suffix = judge_prompt_parts(judge, example.question)
    solution = example.solution.strip() or "(no solution)"
    tail = judge.model.tokenize(solution + suffix, add_special=False, parse_special=True)
    return judge.prompt_tokens(prefix) + tail


def batched_completer(policy: Any, max_tokens: int, seed: int) -> Any:
    """k continuations of each assistant prefix: one engine per call, the question's prompt
    decoded once, every prefix forced into k branches that then decode in one batch."""

    def complete(question: str, assistant_prefixes: list[str], k: int) -> list[list[str]]:
        tokens = policy.prompt_tokens(policy.prompt_text(question))
        # every token holds at least one byte: room for the longest prefix without tokenizing
        room = max(len(p.encode("utf-8")) for p in assistant_prefixes) + 16
        size = EngineSize(
            max_branches=k * len(assistant_prefixes), max_tokens=max_tokens, slack_tokens=room
        )
        with policy.open_engine(tokens, size) as engine:
            groups = []
            for prefix in assistant_prefixes:
                group = []
                for i in range(k):
                    branch = engine.add_branch(
                        policy.sampling.with_seed(seed + i), max_tokens, policy.stop
                    )
                    engine.inject(branch, prefix)
                    group.append(branch)
                groups.append(group)
            for _ in engine.run():
                pass
            return [
                [b.text[len(p) :] for b in group]
                for p, group in zip(assistant_prefixes, groups, strict=True)
            ]

    return complete
