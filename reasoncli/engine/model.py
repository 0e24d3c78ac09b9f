"""A loaded GGUF model: weights, vocabulary and tokenization, with no context attached.

Keeping the model separate from `BranchEngine` lets one load serve many requests (a verifier,
a benchmark grid) while each request sizes its own context.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoncli import crash_watch
from reasoncli.engine import cpu_buffers
from reasoncli.errors import ModelError

# Imported lazily by `load_llama_cpp` so that `reason --help` never pays for llama.cpp.
_llama_cpp: Any = None


def load_llama_cpp(verbose: bool | None = None) -> Any:
    """Import llama_cpp once, its native log silenced unless `verbose`.

    The log setting is process-wide in llama.cpp, so a model load sets it every time (`True` or
    `False`), not only the first import: in a long-lived process (the library API, `reason
    serve`, a test run) one verbose load must not leave every later one printing. `None` (the
    callers that only need the library) leaves it as it is, quiet from the start.
    """
    global _llama_cpp
    first = _llama_cpp is None
    if first:
        crash_watch.start()  # armed by the CLI: one line on stderr if llama.cpp dies
        import llama_cpp

        llama_cpp.llama_backend_init()
    if verbose is not None or first:
        from llama_cpp import _logger

        _logger.set_verbose(bool(verbose))
        if not verbose:
            # llama.cpp reports failures we already turn into one-line errors; keep stderr clean.
            _logger.logger.setLevel(logging.CRITICAL + 1)
    if first:
        cpu_buffers.apply(llama_cpp)  # before any model loads: AMX may crash (cpu_buffers.py)
        _llama_cpp = llama_cpp
    return _llama_cpp


def gpu_available() -> bool:
    """True when llama-cpp-python was built with a GPU backend (CUDA, Metal, Vulkan, ...)."""
    return bool(load_llama_cpp().llama_supports_gpu_offload())


@dataclass(frozen=True)
class ModelLoadOptions:
    gpu_layers: int | None = None  # None: all layers when a GPU backend is present, else 0
    use_mmap: bool = True
    verbose: bool = False


class LlamaModel:
    """Owns a `llama_model*` and answers vocabulary questions quickly (pieces are cached)."""

    def __init__(self, path: Path, options: ModelLoadOptions | None = None) -> None:
        options = options or ModelLoadOptions()
        lib = load_llama_cpp(options.verbose)
        self.lib = lib
        self.path = Path(path)
        params = lib.llama_model_default_params()
        gpu_layers = options.gpu_layers
        if gpu_layers is None:
            gpu_layers = -1 if lib.llama_supports_gpu_offload() else 0
        params.n_gpu_layers = 2**31 - 1 if gpu_layers < 0 else gpu_layers
        params.use_mmap = options.use_mmap
        self.gpu_layers = gpu_layers
        model = lib.llama_model_load_from_file(str(self.path).encode(), params)
        if not model:
            raise ModelError(f"llama.cpp could not load model: {self.path}")
        self.model = model
        self.vocab = lib.llama_model_get_vocab(model)
        self.n_vocab: int = lib.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = lib.llama_model_n_ctx_train(model)
        self.add_bos: bool = bool(lib.llama_vocab_get_add_bos(self.vocab))
        self.kv_bytes_per_token = self._kv_bytes_per_token()
        self.size_bytes: int = lib.llama_model_size(model)
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)

    # -- metadata ---------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    def _kv_bytes_per_token(self) -> int:
        """f16 K and V for every layer: what one token of one branch costs in the KV cache.

        Head sizes come from the GGUF when it states them (Gemma 3's 256 is not embd/heads).
        """
        lib, model = self.lib, self.model
        n_layer = lib.llama_model_n_layer(model)
        n_head_kv = lib.llama_model_n_head_kv(model)
        default = lib.llama_model_n_embd(model) // max(1, lib.llama_model_n_head(model))
        arch = self.meta("general.architecture") or ""
        k = int(self.meta(f"{arch}.attention.key_length") or default)
        v = int(self.meta(f"{arch}.attention.value_length") or default)
        return n_layer * n_head_kv * (k + v) * 2

    @property
    def chat_template(self) -> str | None:
        return self.meta("tokenizer.chat_template")

    def token_text(self, token: int) -> str:
        return self.token_bytes(token).decode("utf-8", errors="replace")

    @property
    def bos_text(self) -> str:
        return self.token_text(self.lib.llama_vocab_bos(self.vocab))

    @property
    def eos_text(self) -> str:
        return self.token_text(self.lib.llama_vocab_eos(self.vocab))

    # -- tokens -----------------------------------------------------------------------------
    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (self.lib.llama_token * capacity)()
        n = self.lib.llama_tokenize(
            self.vocab, data, len(data), buf, capacity, add_special, parse_special
        )
        if n < 0:
            capacity = -n
            buf = (self.lib.llama_token * capacity)()
            n = self.lib.llama_tokenize(
                self.vocab, data, len(data), buf, capacity, add_special, parse_special
            )
        return list(buf[:n])

    def token_bytes(self, token: int) -> bytes:
        """Raw bytes of one token; may be part of a UTF-8 character, so decode incrementally."""
        piece = self._pieces.get(token)
        if piece is None:
            buf = self._piece_buf
            n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            piece = buf.raw[:n]
            self._pieces[token] = piece
        return piece

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(self.lib.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        if getattr(self, "model", None):
            self.lib.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> LlamaModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass
