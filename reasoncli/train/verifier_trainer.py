"""A transformers Trainer that fine-tunes a causal LM into a Yes/No verifier.

The verifier's score at inference is `JudgeVerifier`'s: P(Yes) / (P(Yes) + P(No)) from the
next-token distribution after the judge prompt, summed over every spelling of Yes and No. So
the training loss is binary cross-entropy on exactly that quantity,
`logsumexp(logits[yes]) - logsumexp(logits[no])`, at the prompt's last token: no new head, so
the GGUF export runs through llama.cpp unchanged and the score it gives is the one trained.
Labels may be soft (a PRM step's Monte-Carlo success rate).

Imports torch and transformers at module level: import it once the train extra is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

__all__ = ["LossCallback", "VerifierSettings", "build_verifier_trainer", "yes_no_logit"]


@dataclass(frozen=True)
class VerifierSettings:
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    seed: int
    checkpoint_every: int


def yes_no_logit(logits: torch.Tensor, yes: torch.Tensor, no: torch.Tensor) -> torch.Tensor:
    """log P(Yes) - log P(No) per row of `logits` (rows × vocab): the score's logit."""
    return torch.logsumexp(logits[:, yes], dim=-1) - torch.logsumexp(logits[:, no], dim=-1)


class LossCallback(TrainerCallback):  # type: ignore[misc]
    """Progress lines (step, loss) for the reporter, and Ctrl-C as save-and-stop."""

    def __init__(self, reporter: Any, interrupt: Any) -> None:
        self.reporter = reporter
        self.interrupt = interrupt

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.interrupt.stop_after_step(control)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        loss = (logs or {}).get("loss")
        step, total = state.global_step, state.max_steps
        if isinstance(loss, int | float) and (step % 10 == 0 or step == total):
            self.reporter.status(f"verifier step {step}/{total}  loss {loss:.4f}")


class _Collator:
    """Right-pads token ids and remembers where each prompt ends."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"], dtype=torch.long)
            mask[i, :n] = 1
        labels = torch.tensor([float(r["label"]) for r in rows], dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class _VerifierTrainer(Trainer):  # type: ignore[misc]
    def __init__(self, *args: Any, yes: Sequence[int], no: Sequence[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.yes = torch.tensor(list(yes), dtype=torch.long)
        self.no = torch.tensor(list(no), dtype=torch.long)

    def compute_loss(
        self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False, **_: Any
    ) -> Any:
        labels = inputs.pop("labels")
        mask = inputs["attention_mask"]
        out = model(**inputs)
        last = mask.sum(dim=1) - 1  # right padding: the prompt's final token
        rows = out.logits[torch.arange(len(last), device=last.device), last]
        logit = yes_no_logit(rows.float(), self.yes.to(rows.device), self.no.to(rows.device))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, labels.to(logit))
        return (loss, {"logit": logit}) if return_outputs else loss

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """A run directory is no Hub repository (see train/trainer.py)."""


def build_verifier_trainer(
    model: Any,
    rows: list[dict[str, Any]],
    *,
    yes: Sequence[int],
    no: Sequence[int],
    pad_id: int,
    settings: VerifierSettings,
    run_dir: Path,
    callback: TrainerCallback,
) -> Any:
    """A Trainer over `rows` ({"input_ids", "label"}), checkpointing into `run_dir`."""
    s = settings
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(run_dir),
        max_steps=s.steps,
        per_device_train_batch_size=s.batch_size,
        learning_rate=s.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=s.warmup_steps,
        weight_decay=0.0,
        seed=s.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=s.checkpoint_every,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_pin_memory=cuda,
    )
    trainer = _VerifierTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        data_collator=_Collator(pad_id),
        callbacks=[callback],
        yes=yes,
        no=no,
    )
    for noisy in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(noisy)
    return trainer
