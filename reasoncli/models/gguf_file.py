"""Reading GGUF files: the header facts listings and sizing need (`read_gguf_info`), and every
key/value and tensor for the trainer's loader and exporter (`read_header`).

Both sit on `gguf.GGUFReader`, llama.cpp's own parser (magic, byte order, versions, alignment,
tensor layout, memory-mapped data). Its one cost is a numpy view per metadata array element:
5 s for SmolLM2's 49k-token vocabulary. `_Reader` keeps each array as one view instead, so a
header read stays in milliseconds on every `reason ask` and `reason models list`; the strings
of a vocabulary are split only when the trainer asks for them.

Missing, foreign, corrupt and truncated files become a one-line ModelError here, since
llama.cpp would otherwise abort or fail with a vague message.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasoncli.errors import ModelError

__all__ = [
    "GGUFArray",
    "GGUFHeader",
    "GGUFInfo",
    "KeyValue",
    "TensorInfo",
    "kv_bytes_per_token",
    "read_gguf_info",
    "read_header",
]

_MAGIC = b"GGUF"
_STRING, _ARRAY = 8, 9  # GGUFValueType
_KEEP_ARRAY = 256
"""`GGUFInfo.metadata` keeps arrays up to this long; longer ones become GGUFArray stand-ins."""
_MAX_DIMS = 4  # GGML_MAX_DIMS
_F32, _F16 = 0, 1  # GGMLQuantizationType


class _Unreadable(Exception):
    """A specific problem found while parsing, worded for the user (the path is added later)."""


class _Truncated(_Unreadable):
    """The tensor data runs past the end of the file: an interrupted copy or download."""


@functools.cache
def _reader_class() -> type:
    """`_Reader`, built on first use so that importing this module does not import gguf."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType
    from gguf.gguf_reader import GGUFReader

    class _Reader(GGUFReader):  # type: ignore[misc]
        """GGUFReader with one numpy view per metadata array rather than one per element.

        A numeric array's field has the usual parts with all items in one (so `contents()`
        still works); a string array's holds its raw bytes, split by `_strings`. Also turns
        the header's counts, dimensions, alignment, tensor types and data extent into
        `_Unreadable` before GGUFReader trips over them with a less telling error. Tensor data
        stays memory-mapped, as in GGUFReader: nothing here reads the weights."""

        def _get(
            self,
            offset: int,
            dtype: Any,
            count: int = 1,
            override_order: str | None = None,
        ) -> np.ndarray:
            # GGUFReader's own `_get`, on a plain ndarray view of the map: numpy's memmap
            # subclass costs more per slice than the slicing itself, thousands of times here.
            flat = self.__dict__.get("_flat")
            if flat is None:
                flat = self.__dict__["_flat"] = self.data.view(np.ndarray)
            count = int(count)
            end = offset + np.dtype(dtype).itemsize * count
            arr = flat[offset:end].view(dtype=dtype)[:count]
            order = self.byte_order if override_order is None else override_order
            return arr.view(arr.dtype.newbyteorder(order))

        def _get_field_parts(
            self, orig_offs: int, raw_type: int
        ) -> tuple[int, list[Any], list[int], list[Any]]:
            if raw_type != _ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)  # type: ignore[no-any-return]
            item_type, length = self._get(orig_offs, np.uint32), self._get(orig_offs + 4, np.uint64)
            sub = GGUFValueType(int(item_type[0]))
            count, start = int(length[0]), orig_offs + 12
            types = [GGUFValueType.ARRAY, sub]
            nptype = self.gguf_scalar_to_np.get(sub)
            if nptype is not None:
                items = self._get(start, nptype, count)
                if len(items) != count:
                    raise IndexError("array runs past the end of the file")
                return 12 + int(items.nbytes), [item_type, length, items], [2], types
            if sub == GGUFValueType.STRING:
                whole = self._get(0, np.uint8, len(self.data))
                end = _skip_strings(whole, start, count, _order(self.byte_order))
                return end - orig_offs, [item_type, length, whole[start:end]], [], types
            return super()._get_field_parts(orig_offs, raw_type)  # type: ignore[no-any-return]

        def _get_tensor_info_field(self, orig_offs: int) -> Any:
            name_len = int(self._get(orig_offs, np.uint64)[0])
            n_dims = int(self._get(orig_offs + 8 + name_len, np.uint32)[0])
            if n_dims > _MAX_DIMS:
                raise _Unreadable(f"corrupt GGUF header ({n_dims}-dimensional tensor)")
            return super()._get_tensor_info_field(orig_offs)

        def _build_tensor_info(self, offs: int, count: int) -> tuple[int, list[Any]]:
            out = super()._build_tensor_info(offs, count)
            align = self.fields.get("general.alignment")
            if align is not None:
                value = align.parts[-1][0].item()
                bad_type = align.types != [GGUFValueType.UINT32]
                if bad_type or value <= 0 or value & (value - 1):
                    raise _Unreadable(f"corrupt GGUF header (alignment {value!r})")
            return out  # type: ignore[no-any-return]

        def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
            size, end = len(self.data), start_offs
            for fld in fields:
                _, _, _, dims, raw_dtype, offset = fld.parts
                try:
                    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(int(raw_dtype[0]))]
                except (ValueError, KeyError):
                    raise _Unreadable(
                        f"unknown tensor type {int(raw_dtype[0])} (newer than the installed "
                        "gguf package?)"
                    ) from None
                n_bytes = int(np.prod(dims)) // block * type_size
                end = max(end, start_offs + int(offset[0]) + n_bytes)
            self.data_end = end
            if size < end:
                raise _Truncated(f"has {size} bytes but its tensor data ends at {end}")
            super()._build_tensors(start_offs, fields)

    return _Reader


def _order(byte_order: str) -> str:
    """struct's prefix for GGUFReader's byte order ('I': as the host, 'S': swapped)."""
    native_little = sys.byteorder == "little"
    return "<" if (byte_order == "I") == native_little else ">"


def _skip_strings(buf: Any, pos: int, count: int, order: str) -> int:
    """The offset after `count` length-prefixed strings starting at `pos`."""
    unpack = struct.Struct(order + "Q").unpack_from
    view = memoryview(buf)
    for _ in range(count):
        pos += 8 + unpack(view, pos)[0]
    if pos > len(view):
        raise IndexError("string array runs past the end of the file")
    return pos


def _strings(raw: Any, count: int, order: str) -> list[bytes]:
    """Split a string array's raw bytes (as `_Reader` keeps them) into its items."""
    buf = bytes(raw)
    unpack = struct.Struct(order + "Q").unpack_from
    out, pos = [], 0
    for _ in range(count):
        n = unpack(buf, pos)[0]
        out.append(buf[pos + 8 : pos + 8 + n])
        pos += 8 + n
    return out


def _open(path: Path) -> tuple[Any, int]:
    """(the parsed reader, file size); every problem becomes one ModelError line."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(24)
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(f"model path is a directory, not a GGUF file: {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head[:4] != _MAGIC:
        what = "empty file" if size == 0 else "bad magic"
        raise ModelError(f"not a GGUF file ({what}): {path}")
    if len(head) < 24:
        raise ModelError(f"truncated or corrupt GGUF header: {path}")
    order = "<"
    (version,) = struct.unpack_from("<I", head, 4)
    if version & 0xFFFF == 0:  # written on a big-endian host
        order = ">"
        (version,) = struct.unpack_from(">I", head, 4)
    if version not in (2, 3):
        raise ModelError(f"unsupported GGUF version {version}: {path}")
    n_tensors, n_kv = struct.unpack_from(order + "QQ", head, 8)
    if n_tensors > size or n_kv > size:
        raise ModelError(f"corrupt GGUF header (counts {n_tensors}/{n_kv}): {path}")
    try:
        return _reader_class()(path), size
    except _Truncated as exc:
        raise ModelError(f"truncated GGUF: {path} {exc}") from None
    except _Unreadable as exc:
        raise ModelError(f"{exc}: {path}") from None
    except (IndexError, ValueError, KeyError, struct.error, UnicodeDecodeError):
        raise ModelError(f"truncated or corrupt GGUF header: {path}") from None
    except Exception as exc:  # any reader failure becomes one clear line
        raise ModelError(f"cannot read GGUF {path}: {exc}") from None


def _fields(reader: Any) -> Any:
    """The file's own key/values (GGUFReader adds `GGUF.*` entries for the fixed header)."""
    return ((k, f) for k, f in reader.fields.items() if not k.startswith("GGUF."))


def _value(fld: Any, order: str, *, limit: int | None) -> Any:
    """A field's value: strings as bytes, arrays as lists (None if longer than `limit`)."""
    vtype = int(fld.types[0])
    if vtype == _STRING:
        return bytes(fld.parts[-1])
    if vtype != _ARRAY:
        return fld.parts[-1][0].item()
    if _nested(fld):
        raise ModelError("nested metadata arrays are not supported")
    count = int(fld.parts[4][0])
    if limit is not None and count > limit:
        return None
    if int(fld.types[1]) == _STRING:
        return _strings(fld.parts[5], count, order)
    return fld.parts[5].tolist()


def _nested(fld: Any) -> bool:
    """An array of arrays: `_Reader` leaves those to GGUFReader, item by item, and no model
    reason knows has one."""
    return int(fld.types[0]) == _ARRAY and (len(fld.types) < 2 or int(fld.types[1]) == _ARRAY)


# --------------------------------------------------------------------------------------------
# Header facts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GGUFArray:
    """Stand-in for a large metadata array (vocabularies): its element type and length only."""

    item_type: int
    length: int


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    file_size: int
    version: int
    architecture: str
    name: str | None
    parameter_count: int
    tensor_count: int
    file_type: str | None
    """`general.file_type` as llama.cpp names it, e.g. "Q4_K_M"."""
    quant_type: str
    """The tensor type holding the most bytes, e.g. "Q4_K"."""
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    """Max over layers when the GGUF stores one value per layer."""
    key_length: int | None
    value_length: int | None
    vocab_size: int | None
    chat_template: str | None
    data_end: int
    """Byte offset where the last tensor's data ends; the file must be at least this long."""
    metadata: Mapping[str, Any] = field(repr=False, default_factory=dict)
    """All key/values; arrays over 256 elements are GGUFArray placeholders."""
    tensor_bytes: int = 0
    """Bytes of tensor data: what llama.cpp's `llama_model_size` reports for the weights."""

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def head_dim(self) -> int | None:
        if self.key_length:
            return self.key_length
        if self.embedding_length and self.head_count:
            return self.embedding_length // self.head_count
        return None

    def arch_value(self, key: str) -> Any:
        """`{architecture}.{key}` from the metadata, or None."""
        return self.metadata.get(f"{self.architecture}.{key}")


def _as_int(v: Any) -> int | None:
    if isinstance(v, tuple):  # per-layer values
        nums = [int(x) for x in v if isinstance(x, int | float)]
        return max(nums) if nums else None
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _info_value(fld: Any, order: str) -> Any:
    """As `GGUFInfo.metadata` holds it: str, number, tuple, or GGUFArray when long or nested."""
    if _nested(fld):
        return GGUFArray(_ARRAY, int(fld.parts[4][0]))
    value = _value(fld, order, limit=_KEEP_ARRAY)
    if int(fld.types[0]) == _STRING:
        return value.decode("utf-8", errors="replace")
    if value is None:
        return GGUFArray(int(fld.types[1]), int(fld.parts[4][0]))
    if isinstance(value, list):
        if value and isinstance(value[0], bytes):
            return tuple(v.decode("utf-8", errors="replace") for v in value)
        return tuple(value)
    return value


def read_gguf_info(path: Path) -> GGUFInfo:
    """Header facts for `path` without reading the weights; ModelError (one line) for missing,
    non-GGUF, corrupt and truncated files."""
    from gguf.constants import LlamaFileType

    path = Path(path).expanduser()
    reader, size = _open(path)
    order = _order(reader.byte_order)
    meta = {key: _info_value(fld, order) for key, fld in _fields(reader)}
    n_params = 0
    by_type: dict[str, int] = {}
    for t in reader.tensors:
        n_params += t.n_elements
        by_type[t.tensor_type.name] = by_type.get(t.tensor_type.name, 0) + t.n_bytes

    arch = str(meta.get("general.architecture", "unknown"))

    def arch_int(key: str) -> int | None:
        return _as_int(meta.get(f"{arch}.{key}"))

    ft = meta.get("general.file_type")
    file_type: str | None = None
    if isinstance(ft, int):
        try:
            file_type = LlamaFileType(ft).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            file_type = str(ft)
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = arch_int("vocab_size")
    if vocab is None and tokens is not None:
        vocab = tokens.length if isinstance(tokens, GGUFArray) else len(tokens)
    template = meta.get("tokenizer.chat_template")
    name = meta.get("general.name")
    return GGUFInfo(
        path=path,
        file_size=size,
        version=int(reader.fields["GGUF.version"].parts[0][0]),
        architecture=arch,
        name=name if isinstance(name, str) else None,
        parameter_count=n_params,
        tensor_count=len(reader.tensors),
        file_type=file_type,
        quant_type=max(by_type, key=by_type.__getitem__) if by_type else "none",
        context_length=arch_int("context_length"),
        block_count=arch_int("block_count"),
        embedding_length=arch_int("embedding_length"),
        head_count=arch_int("attention.head_count"),
        head_count_kv=arch_int("attention.head_count_kv") or arch_int("attention.head_count"),
        key_length=arch_int("attention.key_length"),
        value_length=arch_int("attention.value_length"),
        vocab_size=vocab,
        chat_template=template if isinstance(template, str) and template.strip() else None,
        data_end=reader.data_end,
        metadata=meta,
        tensor_bytes=sum(by_type.values()),
    )


def kv_bytes_per_token(info: GGUFInfo) -> int:
    """f16 K+V bytes one token occupies across all layers (0 if the header lacks the shapes,
    e.g. recurrent models). Ignores sliding-window savings, so it is an upper bound."""
    k = info.key_length or info.head_dim
    v = info.value_length or info.head_dim
    if not (k and v and info.block_count):
        return 0
    per_layer = info.arch_value("attention.head_count_kv")
    if isinstance(per_layer, tuple) and len(per_layer) == info.block_count:
        kv_heads = sum(int(h) for h in per_layer)
    elif info.head_count_kv:
        kv_heads = info.block_count * info.head_count_kv
    else:
        return 0
    return kv_heads * (k + v) * 2


# --------------------------------------------------------------------------------------------
# The whole header, for training
# --------------------------------------------------------------------------------------------


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
    data: np.ndarray = field(repr=False, compare=False)
    """The tensor's bytes, memory-mapped (GGUFReader's view)."""


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
        flat = np.asarray(tensor.data).reshape(-1).view(np.uint8)
        if tensor.ggml_type == _F32:
            return flat.view(np.float32).reshape(tensor.shape)
        if tensor.ggml_type == _F16:
            return flat.view(np.float16).reshape(tensor.shape)
        return flat.reshape(*tensor.shape[:-1], -1)


def read_header(path: Path) -> GGUFHeader:
    """All metadata and tensor locations of a GGUF v2/v3, tensor data memory-mapped;
    ModelError (one line) otherwise."""
    path = Path(path)
    reader, _ = _open(path)
    order = _order(reader.byte_order)
    kv: list[KeyValue] = []
    try:
        for key, fld in _fields(reader):
            value, vtype = _value(fld, order, limit=None), int(fld.types[0])
            item = int(fld.types[1]) if vtype == _ARRAY else None
            kv.append(KeyValue(key, vtype, value, item))
    except ModelError as exc:
        raise ModelError(f"{exc}: {path}") from None
    tensors = [
        TensorInfo(
            t.name,
            tuple(int(d) for d in reversed(t.shape.tolist())),
            int(t.tensor_type),
            int(t.data_offset),
            int(t.n_bytes),
            t.data,
        )
        for t in reader.tensors
    ]
    return GGUFHeader(path, kv, tensors)
