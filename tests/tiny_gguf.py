"""Write a small Llama-architecture GGUF with random weights, for fast real-llama.cpp tests.

The tokenizer (and chat template) are copied from an existing GGUF, so prompts tokenize exactly
as they would for the real model, while the network itself is a few layers of noise. Shapes are
configurable: the default is tiny for tests; `--layers 16 --embd 2048 ...` gives 1B-class shapes
for hardware checks. Run as a script: `python tests/tiny_gguf.py SOURCE.gguf OUT.gguf`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TinyShape:
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_ctx: int = 8192
    dtype: str = "f16"  # f32 | f16


def _copy_tokenizer(reader: object, writer: object, chat_template: str | None = None) -> None:
    import gguf

    if chat_template is not None:
        writer.add_chat_template(chat_template)  # type: ignore[attr-defined]
    for name, fld in reader.fields.items():  # type: ignore[attr-defined]
        if not name.startswith("tokenizer."):
            continue
        if chat_template is not None and name == "tokenizer.chat_template":
            continue
        vtype = fld.types[0]
        value = fld.contents()
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, value, vtype, sub_type=fld.types[-1])  # type: ignore[attr-defined]
        else:
            writer.add_key_value(name, value, vtype)  # type: ignore[attr-defined]


def write_tiny_gguf(
    source: Path,
    out: Path,
    shape: TinyShape = TinyShape(),
    seed: int = 0,
    chat_template: str | None = None,
) -> Path:
    """Create `out` with random weights and `source`'s tokenizer (and chat template, unless
    `chat_template` replaces it); returns `out`."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    rng = np.random.default_rng(seed)
    dtype = np.float16 if shape.dtype == "f16" else np.float32
    head_dim = shape.n_embd // shape.n_head

    def weight(rows: int, cols: int, scale: float | None = None) -> np.ndarray:
        s = scale if scale is not None else 1.0 / np.sqrt(cols)
        return (rng.standard_normal((rows, cols), dtype=np.float32) * s).astype(dtype)

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("reason-tiny-random")
    writer.add_context_length(shape.n_ctx)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(1 if shape.dtype == "f16" else 0)
    _copy_tokenizer(reader, writer, chat_template)

    norm = np.ones(shape.n_embd, dtype=np.float32)
    writer.add_tensor("token_embd.weight", weight(n_vocab, shape.n_embd, 1.0))
    for i in range(shape.n_layer):
        p = f"blk.{i}"
        writer.add_tensor(f"{p}.attn_norm.weight", norm)
        writer.add_tensor(f"{p}.attn_q.weight", weight(shape.n_embd, shape.n_embd))
        writer.add_tensor(f"{p}.attn_k.weight", weight(shape.n_head_kv * head_dim, shape.n_embd))
        writer.add_tensor(f"{p}.attn_v.weight", weight(shape.n_head_kv * head_dim, shape.n_embd))
        writer.add_tensor(f"{p}.attn_output.weight", weight(shape.n_embd, shape.n_embd))
        writer.add_tensor(f"{p}.ffn_norm.weight", norm)
        writer.add_tensor(f"{p}.ffn_gate.weight", weight(shape.n_ff, shape.n_embd))
        writer.add_tensor(f"{p}.ffn_up.weight", weight(shape.n_ff, shape.n_embd))
        writer.add_tensor(f"{p}.ffn_down.weight", weight(shape.n_embd, shape.n_ff))
    writer.add_tensor("output_norm.weight", norm)
    writer.add_tensor("output.weight", weight(n_vocab, shape.n_embd))

    save_gguf(writer)
    return out


def save_gguf(writer: Any) -> None:
    """Write a `gguf.GGUFWriter`'s header, metadata and tensors, and close the file: how every
    GGUF the tests make ends."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("source", type=Path, help="GGUF to take the tokenizer from")
    ap.add_argument("out", type=Path)
    ap.add_argument("--layers", type=int, default=TinyShape.n_layer)
    ap.add_argument("--embd", type=int, default=TinyShape.n_embd)
    ap.add_argument("--heads", type=int, default=TinyShape.n_head)
    ap.add_argument("--kv-heads", type=int, default=TinyShape.n_head_kv)
    ap.add_argument("--ff", type=int, default=TinyShape.n_ff)
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16")
    args = ap.parse_args()
    shape = TinyShape(args.layers, args.embd, args.heads, args.kv_heads, args.ff, dtype=args.dtype)
    write_tiny_gguf(args.source, args.out, shape)
    print(args.out)


if __name__ == "__main__":
    main()
