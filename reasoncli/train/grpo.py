"""`reason train grpo` as a library: prepare (every cheap check), then run (train, export,
verify, register, plot).

Training itself is TRL's GRPOTrainer; this module only wires it to the registry, the rewards of
`reasoncli.rewards`, the run directory and a reporter. Everything that can be refused is refused
in `prepare_training`, before torch is even imported.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reasoncli.errors import InputError, ModelError, UsageError
from reasoncli.models.catalog import load_catalog
from reasoncli.models.gguf_file import GGUFInfo, read_gguf_info
from reasoncli.models.resolve import ResolvedModel, resolve_model
from reasoncli.train.cold_start import COLD_START_DIR, COLD_START_FILE
from reasoncli.train.data import TrainData, file_data, task_data, write_heldout
from reasoncli.train.deps import check_train_deps, import_stack
from reasoncli.train.export import export_gguf
from reasoncli.train.plot import PLOT_FILE, plot_available, write_reward_plot
from reasoncli.train.policy import Policy, check_trainable, load_checkpoint, load_gguf
from reasoncli.train.progress import TrainReporter
from reasoncli.train.prompts import is_chat, training_prompt
from reasoncli.train.registry import check_out_name, trained_spec, write_entry
from reasoncli.train.rewards import RewardAdapter
from reasoncli.train.runlog import LOG_FILE, RewardLog, read_log
from reasoncli.train.settings import (
    PROVENANCE_KEY,
    RUN_FILE,
    RunPlan,
    TrainRequest,
    TrainSettings,
    checkpoint_step,
    clear_run_dir,
    latest_checkpoint,
    resolve_settings,
)
from reasoncli.train.think_format import FORMATS
from reasoncli.train.verify import GreedyCheck, greedy_check

__all__ = ["TrainJob", "TrainOutcome", "prepare_training"]

HELDOUT_FILE = "heldout.jsonl"
SUMMARY_FILE = "summary.json"
REFERENCE_DIR = "reference"
COLD_START_SUMMARY = "cold-start.json"
_NOISY = ("transformers", "trl", "torch", "accelerate", "datasets", "huggingface_hub")


@dataclass
class TrainOutcome:
    name: str
    source: str
    data: str
    run_dir: Path
    device: str
    start_step: int
    step: int
    total_steps: int
    interrupted: bool
    seconds_per_step: float | None
    reward_log: Path
    start: dict[str, float] | None = None
    end: dict[str, float] | None = None
    gguf: Path | None = None
    greedy: GreedyCheck | None = None
    registry: Path | None = None
    plot: Path | None = None
    heldout: Path | None = None
    cold_start: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        def path(p: Path | None) -> str | None:
            return str(p) if p is not None else None

        return {
            "model": self.name,
            "source": self.source,
            "data": self.data,
            "run_dir": str(self.run_dir),
            "device": self.device,
            "start_step": self.start_step,
            "step": self.step,
            "steps": self.total_steps,
            "interrupted": self.interrupted,
            "seconds_per_step": round(self.seconds_per_step, 3) if self.seconds_per_step else None,
            "start": self.start,
            "end": self.end,
            "gguf": path(self.gguf),
            "greedy_check": self.greedy.to_json() if self.greedy else None,
            "registered_in": path(self.registry),
            "reward_log": str(self.reward_log),
            "plot": path(self.plot),
            "heldout": path(self.heldout),
            "cold_start": self.cold_start,
        }


def prepare_training(request: TrainRequest) -> TrainJob:
    """Validate flags, model, name and data; nothing heavy is imported or loaded."""
    check_train_deps()
    catalog = load_catalog()
    plan = resolve_settings(request, catalog.default.name)
    s = plan.settings
    source = resolve_model(s.model, catalog)
    resolved = replace(source, spec=FORMATS[s.format].training_spec(source.spec))
    info = read_gguf_info(resolved.path)
    check_trainable(info, s.model)
    check_out_name(s.out, catalog, force=request.force, run_dir=plan.run_dir)
    if s.data is not None:
        data = file_data(s.data, limit=s.limit, heldout=s.heldout)
    else:
        assert s.task is not None
        data = task_data(
            s.task, difficulty=s.difficulty, seed=s.seed, limit=s.limit, heldout=s.heldout
        )
    if len(data.train) < s.prompts_per_step:
        raise UsageError(
            f"--prompts-per-step {s.prompts_per_step} exceeds the {len(data.train)} training "
            "question(s)"
        )
    return TrainJob(plan, resolved, info, data, request.force, source)


def _quiet_libraries() -> None:
    """Library warnings and log lines would break the one-line-error, clean-stderr contract."""
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _summary_window(records: list[dict[str, Any]], last: bool) -> dict[str, float] | None:
    if not records:
        return None
    k = max(1, min(10, len(records) // 4))
    window = records[-k:] if last else records[:k]
    keys = ("reward", "accuracy", "format", "stop", "completion_tokens")
    out = {key: round(sum(float(r.get(key) or 0) for r in window) / k, 4) for key in keys}
    return {"steps": k, **out}


@dataclass
class TrainJob:
    plan: RunPlan
    resolved: ResolvedModel
    info: GGUFInfo
    data: TrainData
    force: bool
    source: ResolvedModel | None = None
    """The model as registered (its own template and sampling): what a cold start samples."""

    @property
    def settings(self) -> TrainSettings:
        return self.plan.settings

    @property
    def run_dir(self) -> Path:
        return self.plan.run_dir

    def run(self, reporter: TrainReporter) -> TrainOutcome:
        """Train to the step target, then export, check, register and plot; Ctrl-C stops
        after the running step with a checkpoint (the outcome says `interrupted`)."""
        import_stack()
        _quiet_libraries()
        import torch

        from reasoncli.train.callbacks import GracefulInterrupt, StepCallback
        from reasoncli.train.trainer import build_trainer

        s, spec = self.settings, self.resolved.spec
        checkpoint, heldout = self._prepare_run_dir()
        start_step = checkpoint_step(checkpoint)
        log = RewardLog(self.run_dir / LOG_FILE)
        log.keep_until(start_step)
        policy = self._load_policy(checkpoint, reporter)
        chat = is_chat(spec, self.info.chat_template)
        rows = [
            {
                "prompt": training_prompt(p.question, spec, chat),
                "answer": p.answer,
                "multiple_choice": p.multiple_choice,
            }
            for p in self.data.train
        ]
        adapter = RewardAdapter(_eos_ids(policy), think_tags=spec.think_tags, stop=spec.stop)
        interrupt = GracefulInterrupt(reporter)
        callback = StepCallback(reporter, log, interrupt)
        # A finished run resumed (say, after its export failed) only exports again: the HF
        # trainer would otherwise run one step past max_steps from a final checkpoint.
        trainer = None
        if start_step < s.steps:
            trainer = build_trainer(policy, rows, adapter, s, self.run_dir, callback)
            with interrupt.installed():
                trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

        step = int(trainer.state.global_step) if trainer else start_step
        records = read_log(log.path)
        durations = callback.durations
        outcome = TrainOutcome(
            name=s.out,
            source=spec.name,
            data=self.data.source,
            run_dir=self.run_dir,
            device="cuda" if torch.cuda.is_available() else "cpu",
            start_step=start_step,
            step=step,
            total_steps=s.steps,
            interrupted=interrupt.requested and step < s.steps,
            seconds_per_step=sum(durations) / len(durations) if durations else None,
            reward_log=log.path,
            start=_summary_window(records, last=False),
            end=_summary_window(records, last=True),
            heldout=heldout,
            cold_start=self._cold_start_summary(),
        )
        if outcome.interrupted:
            return outcome
        if trainer is not None:
            policy = replace(policy, model=trainer.accelerator.unwrap_model(trainer.model))
        self._finish(policy, outcome, chat, reporter)
        if plot_available() and records:
            reporter.status("drawing the reward curve")
            title = f"{s.out}: GRPO on {self.data.source} from {spec.name}"
            outcome.plot = write_reward_plot(records, self.run_dir / PLOT_FILE, title)
        summary = json.dumps(outcome.to_json(), indent=2) + "\n"
        (self.run_dir / SUMMARY_FILE).write_text(summary, "utf-8")
        return outcome

    def _prepare_run_dir(self) -> tuple[Path | None, Path | None]:
        """(checkpoint to resume from, held-out file) with the run file written."""
        run_dir = self.run_dir
        if self.plan.clear_run_dir:
            clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = self.settings.to_json()
        if self.data.provenance is not None:
            record[PROVENANCE_KEY] = self.data.provenance
        (run_dir / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
        heldout = run_dir / HELDOUT_FILE if self.data.heldout else None
        if heldout is not None:
            write_heldout(self.data.heldout, heldout)
        return (latest_checkpoint(run_dir) if self.plan.resuming else None), heldout

    def _load_policy(self, checkpoint: Path | None, reporter: TrainReporter) -> Policy:
        spec = self.resolved.spec
        if checkpoint is not None:
            reporter.status(f"loading {checkpoint.name}")
            policy = load_checkpoint(checkpoint, spec.chat_template)
        elif self.settings.cold_start and (self.run_dir / COLD_START_DIR / "config.json").is_file():
            reporter.status(f"loading the cold-started model ({COLD_START_DIR}/)")
            policy = load_checkpoint(self.run_dir / COLD_START_DIR, spec.chat_template)
        else:
            reporter.status(f"loading {self.resolved.path.name}")
            policy = load_gguf(self.resolved.path, spec.chat_template)
            if self.settings.cold_start:
                self._cold_start(policy, reporter)
        # With a cold start the reference is the cold-started model, as in R1's RL stage.
        if self.settings.kl > 0:
            _point_reference(policy, self.run_dir, resumed=checkpoint is not None)
        return policy

    def _cold_start(self, policy: Policy, reporter: TrainReporter) -> None:
        """Fine-tune `policy` in place on the model's own right solutions in the think format
        (`reasoncli.train.cold_start`) and save it to RUN_DIR/cold-start/."""
        from reasoncli.session import Session, SessionOptions
        from reasoncli.train.cold_start import (
            COLD_START_LOG,
            collect_examples,
            fine_tune,
            llama_sampler,
            read_examples,
            write_examples,
        )

        s, spec = self.settings, self.resolved.spec
        source = self.source or self.resolved
        examples_file = self.run_dir / COLD_START_FILE
        tried: int | None = None
        if examples_file.is_file():  # sampled before an interruption: the same examples
            examples = read_examples(examples_file)
        else:
            reporter.status(f"cold start: sampling {source.spec.name} on training problems")
            session = Session.load(source, SessionOptions())
            try:
                sampler = llama_sampler(session, s.max_tokens, s.seed)
                examples, tried = collect_examples(self.data.train, sampler, s.cold_start, reporter)
            finally:
                session.close()
            if not examples:
                raise ModelError(
                    f"cold start: {source.spec.name} solved none of the {tried} training problems "
                    "it tried in its own format; start from a model that solves some (or drop "
                    "--cold-start)"
                )
            write_examples(examples, examples_file)
        chat = is_chat(spec, self.info.chat_template)
        log = fine_tune(
            policy,
            examples,
            lambda question: training_prompt(question, spec, chat),
            seed=s.seed,
            log_path=self.run_dir / COLD_START_LOG,
            reporter=reporter,
        )
        summary = {
            "examples": len(examples),
            "problems_tried": tried,
            "sampled_from": source.spec.name,
            "fine_tune_steps": len(log),
            "loss_first": log[0]["loss"],
            "loss_last": log[-1]["loss"],
        }
        (self.run_dir / COLD_START_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        tmp = self.run_dir / f".{COLD_START_DIR}.{os.getpid()}.tmp"
        policy.model.save_pretrained(str(tmp))
        policy.tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, self.run_dir / COLD_START_DIR)

    def _cold_start_summary(self) -> dict[str, Any] | None:
        path = self.run_dir / COLD_START_SUMMARY
        if not self.settings.cold_start or not path.is_file():
            return None
        summary: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return summary

    def _finish(
        self, policy: Policy, outcome: TrainOutcome, chat: bool, reporter: TrainReporter
    ) -> None:
        """Export, compare greedy tokens with the export, and register it."""
        s, spec = self.settings, self.resolved.spec
        gguf = self.run_dir / f"{s.out}-{s.export.upper()}.gguf"
        reporter.status(f"exporting {s.export.upper()} GGUF")
        export_gguf(
            policy.model.state_dict(),
            policy.model.config,
            self.resolved.path,
            gguf,
            file_type=s.export,
            name=s.out,
            chat_template=FORMATS[s.format].chat_template,
        )
        outcome.gguf = gguf
        reporter.status("checking the export against the trained model (greedy decoding)")
        probe = (self.data.heldout or self.data.train)[0].question
        outcome.greedy = greedy_check(
            policy, gguf, spec, probe, chat=chat, eos_ids=set(_eos_ids(policy))
        )
        catalog = load_catalog()
        check_out_name(s.out, catalog, force=self.force, run_dir=self.run_dir)
        cold = (
            f" after a cold start on {outcome.cold_start['examples']} of its own solutions"
            if outcome.cold_start
            else ""
        )
        description = (
            f"GRPO-trained from {spec.name} on {self.data.source}, {outcome.step} steps{cold} "
            "(reason train grpo)"
        )
        entry = FORMATS[s.format].registered_spec(spec)
        outcome.registry = write_entry(trained_spec(s.out, entry, gguf, description))


def _eos_ids(policy: Policy) -> list[int]:
    """Every id that ends a completion, as GRPOTrainer counts them."""
    configured = policy.model.generation_config.eos_token_id
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    if policy.tokenizer.eos_token_id is not None and policy.tokenizer.eos_token_id not in ids:
        ids.insert(0, policy.tokenizer.eos_token_id)
    return ids


def _point_reference(policy: Policy, run_dir: Path, *, resumed: bool) -> None:
    """With a KL term GRPOTrainer loads a reference model from `config._name_or_path`, which
    for a GGUF is a model name, not a path: save the untrained weights once and point there."""
    reference = run_dir / REFERENCE_DIR
    if not (reference / "config.json").is_file():
        if resumed:  # the policy is a checkpoint now: it cannot stand in for the original
            raise InputError(f"{reference} is missing: the run cannot resume with --kl")
        tmp = run_dir / f".{REFERENCE_DIR}.{os.getpid()}.tmp"
        policy.model.save_pretrained(str(tmp))
        policy.tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, reference)
    policy.model.config._name_or_path = str(reference)
