"""Read a Llama GGUF into a transformers config and fp32 state dict, without transformers'
GGUF loader.

transformers' loader parses the whole GGUF header with `gguf.GGUFReader` twice (config, then
weights), about 6 s each for SmolLM2's vocabulary on this CPU, and leaves the model flagged as
quantized, so that GRPOTrainer refuses it. This reads the header once (`models.gguf_file`),
dequantizes with the same `gguf.quants` code and undoes the same permutation (`llama_layout`),
giving an ordinary trainable `LlamaForCausalLM` in a fraction of the time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reasoncli.errors import ModelError
from reasoncli.models.gguf_file import GGUFHeader, read_header
from reasoncli.train.llama_layout import gguf_to_hf_name, qk_heads, unpermute_qk

__all__ = ["llama_config", "read_llama"]


def _need(header: GGUFHeader, key: str) -> Any:
    value = header.get(f"llama.{key}")
    if value is None:
        raise ModelError(f"{header.path}: the GGUF has no llama.{key}")
    return value


def llama_config(header: GGUFHeader) -> Any:
    """The `LlamaConfig` the GGUF's metadata describes (as transformers' loader maps it)."""
    from transformers import LlamaConfig

    n_embd, n_head = (
        int(_need(header, "embedding_length")),
        int(_need(header, "attention.head_count")),
    )
    n_head_kv = header.get("llama.attention.head_count_kv") or n_head
    names = {t.name: t for t in header.tensors}
    if "token_embd.weight" not in names:
        raise ModelError(f"{header.path}: the GGUF has no token_embd.weight")
    rope_theta = float(header.get("llama.rope.freq_base") or 10000.0)
    return LlamaConfig(
        vocab_size=names["token_embd.weight"].shape[0],
        hidden_size=n_embd,
        intermediate_size=int(_need(header, "feed_forward_length")),
        num_hidden_layers=int(_need(header, "block_count")),
        num_attention_heads=n_head,
        num_key_value_heads=int(n_head_kv),
        head_dim=int(header.get("llama.rope.dimension_count") or n_embd // n_head),
        max_position_embeddings=int(header.get("llama.context_length") or 2048),
        rms_norm_eps=float(header.get("llama.attention.layer_norm_rms_epsilon") or 1e-5),
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        tie_word_embeddings="output.weight" not in names,
        bos_token_id=header.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=header.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=header.get("tokenizer.ggml.padding_token_id"),
        dtype="float32",
    )


def read_llama(path: Path) -> tuple[Any, dict[str, Any]]:
    """(config, state dict of fp32 torch tensors) for a Llama GGUF."""
    import torch
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize

    header = read_header(path)
    if header.get("general.architecture") != "llama":
        raise ModelError(f"{path}: not a Llama-architecture GGUF")
    config = llama_config(header)
    state: dict[str, Any] = {}
    for info in header.tensors:
        name = gguf_to_hf_name(info.name)
        if name is None:
            continue
        raw = header.raw(info)
        kind = GGMLQuantizationType(info.ggml_type)
        data = np.asarray(dequantize(raw, kind), dtype=np.float32).reshape(info.shape)
        heads = qk_heads(info.name, config.num_attention_heads, config.num_key_value_heads)
        if heads is not None:
            data = unpermute_qk(data, heads)
        state[name] = torch.from_numpy(np.array(data, dtype=np.float32, order="C"))  # a copy
    return config, state
