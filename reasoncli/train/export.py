"""Write a trained Llama back to GGUF: the source file's metadata, the new weights.

Everything but the weights comes from the source GGUF (tokenizer, chat template, hyperparameters,
licence), so llama.cpp prompts and stops the trained model exactly as it did the original. Only
Q8_0 and F16 are written: re-quantizing to 4 bits snapped a probe's trained weights back to the
original codes and erased the training. The Q and K projections are permuted back into
llama.cpp's rotary layout (convert_hf_to_gguf's `permute`), which loading undid (`llama_layout`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from reasoncli.errors import ModelError
from reasoncli.models.gguf_file import GGUFHeader, read_header
from reasoncli.train.llama_layout import gguf_to_hf_name, permute_qk, qk_heads

__all__ = ["export_gguf"]

# Source keys that describe the old file rather than the model.
_DROP_PREFIXES = ("quantize.", "split.")
_REPLACED = ("general.architecture", "general.alignment", "general.file_type", "general.name")


def _encode(data: np.ndarray, file_type: str) -> tuple[np.ndarray, Any]:
    """(array, raw GGML type or None) as convert_hf_to_gguf stores it: 1-D tensors in F32,
    matrices in F16 or Q8_0 (F16 when a row does not split into Q8_0 blocks)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import quantize

    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim == 1:
        return data, None
    block = GGML_QUANT_SIZES[GGMLQuantizationType.Q8_0][0]
    if file_type == "q8_0" and data.shape[-1] % block == 0:
        return quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    return data.astype(np.float16), None


def export_gguf(
    state: dict[str, Any],
    config: Any,
    source: Path,
    out: Path,
    *,
    file_type: str,
    name: str,
    chat_template: str | None = None,
) -> Path:
    """Write `state` (a transformers Llama state dict) as `out`, shaped like `source`;
    `chat_template` replaces the source's (`--format think` trains with its own)."""
    import gguf

    header = read_header(source)
    arch = header.get("general.architecture")
    if arch != "llama":
        raise ModelError(f"{source}: cannot export architecture {arch!r}")
    weights = {k: _numpy(v) for k, v in state.items()}
    tied = bool(getattr(config, "tie_word_embeddings", False))
    n_head, n_head_kv = config.num_attention_heads, config.num_key_value_heads

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(tmp), "llama")
    try:
        _copy_metadata(header, writer, file_type=file_type, name=name, chat_template=chat_template)
        used = set()
        for info in header.tensors:
            hf = gguf_to_hf_name(info.name)
            if hf is None:
                writer.add_tensor(info.name, header.raw(info), raw_dtype=_raw_type(info.ggml_type))
                continue
            if hf not in weights:
                raise ModelError(f"cannot export: the trained model has no {hf} for {info.name}")
            data = weights[hf]
            if data.shape != info.shape:
                raise ModelError(f"cannot export {info.name}: shape {data.shape} != {info.shape}")
            heads = qk_heads(info.name, n_head, n_head_kv)
            if heads is not None:
                data = permute_qk(data, heads)
            array, raw_type = _encode(data, file_type)
            writer.add_tensor(info.name, array, raw_dtype=raw_type)
            used.add(hf)
        untied_head = "lm_head.weight" in weights and not tied and "lm_head.weight" not in used
        if untied_head:  # the source tied the head to the embeddings; training untied it
            array, raw_type = _encode(weights["lm_head.weight"], file_type)
            writer.add_tensor("output.weight", array, raw_dtype=raw_type)
            used.add("lm_head.weight")
        left = sorted(set(weights) - used - ({"lm_head.weight"} if tied else set()))
        if left:
            raise ModelError(f"cannot export: no GGUF tensor for {', '.join(left[:3])}")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().to("cpu").float().numpy()


def _raw_type(ggml_type: int) -> Any:
    from gguf.constants import GGMLQuantizationType

    kind = GGMLQuantizationType(ggml_type)
    return None if kind in (GGMLQuantizationType.F32, GGMLQuantizationType.F16) else kind


def _copy_metadata(
    header: GGUFHeader, writer: Any, *, file_type: str, name: str, chat_template: str | None
) -> None:
    from gguf.constants import GGML_QUANT_VERSION, GGUFValueType, LlamaFileType

    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for kv in header.kv:
        if kv.key.startswith(_DROP_PREFIXES) or kv.key in _REPLACED:
            continue
        if chat_template is not None and kv.key == "tokenizer.chat_template":
            continue
        if kv.item_type is not None and not kv.value:
            continue  # GGUFWriter cannot write an empty array, and nothing reads one
        vtype = GGUFValueType(kv.type)
        item = GGUFValueType(kv.item_type) if kv.item_type is not None else None
        writer.add_key_value(kv.key, kv.value, vtype, sub_type=item)
    writer.add_name(name)
    kind = LlamaFileType.MOSTLY_Q8_0 if file_type == "q8_0" else LlamaFileType.MOSTLY_F16
    writer.add_file_type(int(kind))
    if header.get("general.quantization_version") is None:
        writer.add_quantization_version(GGML_QUANT_VERSION)
