"""How a Llama's tensors are named and laid out in transformers versus in a GGUF file.

llama.cpp's converter renames every tensor and permutes the rows of the Q and K projections into
its rotary layout (convert_hf_to_gguf's `permute`); loading reverses both, exporting redoes them.
Both directions live here so they cannot drift apart.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["gguf_to_hf_name", "permute_qk", "qk_heads", "unpermute_qk"]

_LAYER = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_RE = re.compile(r"blk\.(\d+)\.(\w+)\.weight")


def gguf_to_hf_name(name: str) -> str | None:
    """The transformers parameter behind a Llama GGUF tensor; None for derived tensors
    (such as Llama 3's `rope_freqs`) that no parameter holds."""
    if name in _GLOBAL:
        return _GLOBAL[name]
    m = _BLOCK_RE.fullmatch(name)
    if m and m.group(2) in _LAYER:
        return f"model.layers.{m.group(1)}.{_LAYER[m.group(2)]}.weight"
    return None


def qk_heads(gguf_name: str, n_head: int, n_head_kv: int) -> int | None:
    """The head count a tensor is permuted by: Q by all heads, K by the KV heads, else None."""
    if gguf_name.endswith("attn_q.weight"):
        return n_head
    if gguf_name.endswith("attn_k.weight"):
        return n_head_kv
    return None


def permute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """transformers' rotary halves -> llama.cpp's interleaved pairs."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def unpermute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of `permute_qk`."""
    return (
        weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )
