"""What a GGUF's file name says: its quantization tag and its part of a split model."""

from __future__ import annotations

import re
from pathlib import Path

_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})$")
_QUANT_RE = re.compile(
    r"(?:^|[-._])((?:UD-)?(?:I?Q\d+(?:_[A-Z0-9]+)*|BF16|F16|F32|FP16|FP32))$", re.IGNORECASE
)


def split_part(file: str) -> tuple[int, int] | None:
    """(part, parts) for llama.cpp split files named `...-00001-of-00003.gguf`."""
    m = _SPLIT_RE.search(Path(file).name.removesuffix(".gguf"))
    return (int(m.group(1)), int(m.group(2))) if m else None


def quant_from_filename(file: str) -> str | None:
    """The quantization tag a GGUF's name ends with (`...-Q4_K_M.gguf` -> "Q4_K_M"), upper-cased
    so tags compare the way users type them; None if the name carries none."""
    stem = _SPLIT_RE.sub("", Path(file).name.removesuffix(".gguf"))
    m = _QUANT_RE.search(stem)
    return m.group(1).upper() if m else None
