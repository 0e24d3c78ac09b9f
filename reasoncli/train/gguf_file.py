"""Read a whole GGUF header (every key/value, every tensor's place) fast, for the exporter.

`gguf.GGUFReader` builds a numpy view per vocabulary entry and takes seconds on SmolLM2's 49k
tokens; the exporter only needs to copy the metadata and a few raw tensors, so this walks the
header with `struct` and maps tensor data lazily with `numpy.memmap`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reasoncli.errors import ModelError

__all__ = ["GGUFHeader", "KeyValue", "TensorInfo", "read_header"]

_MAGIC = b"GGUF"
_SCALAR_TYPES = (0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12)  # GGUFValueType, less STRING and ARRAY
_SCALARS = dict(zip(_SCALAR_TYPES, "BbHhIif?Qqd", strict=True))
_NUMPY = dict(
    zip(
        _SCALAR_TYPES,
        ("u1", "i1", "u2", "i2", "u4", "i4", "f4", "?", "u8", "i8", "f8"),
        strict=True,
    )
)
_STRING, _ARRAY = 8, 9
_DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class KeyValue:
    """One metadata entry, typed as GGUF stores it, so it can be written back unchanged.

    Strings stay `bytes` (a vocabulary may hold pieces that are not valid UTF-8 on their own);
    numeric arrays are lists of Python numbers.
    """

    key: str
    type: int
    value: Any
    item_type: int | None = None


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    """numpy order (rows first), the reverse of GGUF's dimension order."""
    ggml_type: int
    offset: int
    """Absolute byte offset of the data in the file."""
    n_bytes: int


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    kv: list[KeyValue]
    tensors: list[TensorInfo]

    def get(self, key: str) -> Any:
        """A metadata value (strings decoded), or None."""
        for kv in self.kv:
            if kv.key == key:
                return kv.value.decode("utf-8", "replace") if kv.type == _STRING else kv.value
        return None

    def raw(self, tensor: TensorInfo) -> np.ndarray:
        """The tensor's bytes as stored (quantized blocks stay blocks), shaped for GGUFWriter."""
        data = np.memmap(self.path, dtype=np.uint8, mode="r", offset=tensor.offset)
        flat = np.asarray(data[: tensor.n_bytes])
        if tensor.ggml_type == 0:  # F32
            return flat.view(np.float32).reshape(tensor.shape)
        if tensor.ggml_type == 1:  # F16
            return flat.view(np.float16).reshape(tensor.shape)
        return flat.reshape(*tensor.shape[:-1], -1)


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def read(self, fmt: str) -> Any:
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return value

    def bytes_(self) -> bytes:
        n = self.read("Q")
        if self.pos + n > len(self.buf):
            raise struct.error("string runs past the end of the file")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.bytes_()
        fmt = _SCALARS.get(vtype)
        if fmt is None:
            raise ValueError(f"unknown metadata value type {vtype}")
        return self.read(fmt)

    def array(self, item_type: int, n: int) -> list[Any]:
        dtype = _NUMPY.get(item_type)
        if dtype is not None:  # one numpy read instead of n struct calls
            size = np.dtype(dtype).itemsize * n
            out = np.frombuffer(self.buf, dtype="<" + dtype, count=n, offset=self.pos).tolist()
            self.pos += size
            return out
        if item_type == _ARRAY:
            raise ValueError("nested metadata arrays are not supported")
        return [self.value(item_type) for _ in range(n)]


def read_header(path: Path) -> GGUFHeader:
    """All metadata and tensor locations of a little-endian GGUF v2/v3; ModelError otherwise."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        with open(path, "rb") as fh:
            buf = np.memmap(fh, dtype=np.uint8, mode="r")
            cur = _Cursor(buf)  # type: ignore[arg-type]
            if bytes(buf[:4]) != _MAGIC:
                raise ModelError(f"not a GGUF file: {path}")
            cur.pos = 4
            version = cur.read("I")
            if version not in (2, 3):
                raise ModelError(f"unsupported GGUF version {version} (or big-endian): {path}")
            n_tensors, n_kv = cur.read("Q"), cur.read("Q")
            kv: list[KeyValue] = []
            for _ in range(n_kv):
                key = cur.bytes_().decode("utf-8")
                vtype = cur.read("I")
                if vtype == _ARRAY:
                    item_type, n = cur.read("I"), cur.read("Q")
                    kv.append(KeyValue(key, vtype, cur.array(item_type, n), item_type))
                else:
                    kv.append(KeyValue(key, vtype, cur.value(vtype)))
            infos = []
            for _ in range(n_tensors):
                name = cur.bytes_().decode("utf-8")
                dims = [cur.read("Q") for _ in range(cur.read("I"))]
                infos.append((name, tuple(reversed(dims)), cur.read("I"), cur.read("Q")))
            alignment = next(
                (int(k.value) for k in kv if k.key == "general.alignment"), _DEFAULT_ALIGNMENT
            )
            start = -(-cur.pos // alignment) * alignment
    except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read GGUF {path}: {exc}") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    tensors = []
    for name, shape, ggml_type, offset in infos:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
        n_bytes = int(np.prod(shape)) // block * type_size
        tensors.append(TensorInfo(name, shape, ggml_type, start + offset, n_bytes))
    return GGUFHeader(Path(path), kv, tensors)
