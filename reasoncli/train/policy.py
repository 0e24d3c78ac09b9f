"""The model being trained: a GGUF (or a checkpoint) as a plain, trainable transformers Llama.

Weights come from `gguf_model` (see there why not transformers' GGUF loader), the tokenizer
from transformers' GGUF tokenizer conversion. Only the Llama architecture is supported, because
the exporter writes Llama tensors back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoncli.errors import ModelError
from reasoncli.models.gguf_file import GGUFInfo

__all__ = ["SUPPORTED_ARCHITECTURES", "Policy", "check_trainable", "load_checkpoint", "load_gguf"]

SUPPORTED_ARCHITECTURES = ("llama",)


@dataclass
class Policy:
    model: Any  # transformers.LlamaForCausalLM
    tokenizer: Any  # transformers.PreTrainedTokenizerBase


def check_trainable(info: GGUFInfo, label: str) -> None:
    """Refuse, before loading anything, a GGUF the exporter could not write back."""
    if info.architecture not in SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"{label}: architecture {info.architecture!r} cannot be trained; reason train supports "
            "Llama-architecture GGUFs (SmolLM2, Llama 3.2)"
        )
    if info.arch_value("expert_count"):
        raise ModelError(f"{label}: mixture-of-experts Llama models cannot be trained")


def quiet_transformers() -> None:
    """transformers' loading bars and warnings would land in the user's terminal."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _prepare_tokenizer(tokenizer: Any, chat_template: str | None) -> Any:
    tokenizer.padding_side = "left"  # generation continues prompts from their right end
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def load_gguf(path: Path, chat_template: str | None = None) -> Policy:
    """The GGUF's weights in fp32 and its tokenizer; `chat_template` overrides the file's."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from reasoncli.train.gguf_model import read_llama

    quiet_transformers()
    config, state = read_llama(path)
    model = LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ModelError(f"{path}: cannot load: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{path}: transformers cannot read its tokenizer: {exc}") from None
    return Policy(model, _prepare_tokenizer(tokenizer, chat_template))


def load_checkpoint(path: Path, chat_template: str | None = None) -> Policy:
    """A Trainer checkpoint (weights, config, tokenizer): what `--resume` continues from."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    quiet_transformers()
    try:
        model = LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{path}: cannot load the checkpoint: {exc}") from None
    return Policy(model, _prepare_tokenizer(tokenizer, chat_template))
