"""TRL's GRPOTrainer, configured for `reason train grpo`: one generation batch per optimizer
step, our reward functions and weights, checkpoints in the run directory, no printing.

Imports TRL at module level, so it is imported only once the train extra is known to be there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import PrinterCallback, ProgressCallback, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from reasoncli.train.pass_at_k import pass_at_k_advantages
from reasoncli.train.policy import Policy
from reasoncli.train.rewards import REWARD_WEIGHTS, RewardAdapter
from reasoncli.train.settings import TrainSettings

__all__ = ["build_trainer"]


class _Trainer(GRPOTrainer):  # type: ignore[misc]
    pass_k = 1
    """Credit groups for their best of k completions (`reasoncli.train.pass_at_k`); 1 is GRPO."""
    _rewards_per_func: torch.Tensor | None = None

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """TRL writes a Hub model card (README.md) at every save; a run directory is no Hub
        repository, and the card would name the base model "None"."""

    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """TRL's rewards (every process's rows × reward functions), kept for the pass@k
        advantages; the logged rewards stay the raw ones."""
        self._rewards_per_func = super()._calculate_rewards(*args, **kwargs)
        return self._rewards_per_func

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        output: dict[str, Any] = super()._generate_and_score_completions(inputs)
        if self.pass_k > 1 and self.model.training and self._rewards_per_func is not None:
            weights = self.reward_weights.to(self._rewards_per_func.device)
            totals = (self._rewards_per_func * weights.unsqueeze(0)).nansum(dim=1).tolist()
            every = pass_at_k_advantages(totals, self.num_generations, self.pass_k)
            local = len(output["advantages"])
            start = self.accelerator.process_index * local
            output["advantages"] = torch.tensor(
                every[start : start + local], dtype=output["advantages"].dtype
            ).to(output["advantages"].device)
        return output


def build_trainer(
    policy: Policy,
    rows: list[dict[str, Any]],
    adapter: RewardAdapter,
    settings: TrainSettings,
    run_dir: Path,
    callback: TrainerCallback,
) -> Any:
    """A GRPOTrainer whose optimizer step sees `prompts_per_step` prompts × `group_size`
    completions, generated together (one generation batch per step)."""
    s = settings
    cuda = torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=str(run_dir),
        max_steps=s.steps,
        per_device_train_batch_size=s.group_size * s.prompts_per_step,
        gradient_accumulation_steps=1,
        num_generations=s.group_size,
        max_completion_length=s.max_tokens,
        temperature=s.temperature,
        learning_rate=s.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=s.warmup_steps,
        beta=s.kl,
        seed=s.seed,
        reward_weights=list(REWARD_WEIGHTS.values()),
        remove_unused_columns=False,  # the reward functions read `answer` and `multiple_choice`
        logging_steps=1,
        save_strategy="steps",
        save_steps=s.checkpoint_every,
        save_total_limit=1,  # a checkpoint is weights + Adam state: 1.6 GB for SmolLM2-135M
        report_to="none",
        disable_tqdm=True,
        log_completions=False,
        gradient_checkpointing=s.gradient_checkpointing,
        use_cpu=not cuda,
        # TRL turns bf16 on by default, on CPU too; the probe trained in fp32 there.
        bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_pin_memory=cuda,
    )
    trainer = _Trainer(
        model=policy.model,
        reward_funcs=adapter.functions(),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=policy.tokenizer,
        callbacks=[callback],
    )
    trainer.pass_k = s.pass_k
    for noisy in (PrinterCallback, ProgressCallback):  # they print logs to stdout/stderr
        trainer.remove_callback(noisy)
    return trainer
