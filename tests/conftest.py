"""Shared fixtures: the embedded SmolLM2 file, a tiny random Llama GGUF made from it, and a real
llama_cpp.server on that GGUF behind a fault proxy (the remote backend's tests)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_gguf import TinyShape, write_tiny_gguf  # noqa: E402

if TYPE_CHECKING:
    from remote_support import FaultProxy, LlamaServer

    from reasoncli.session import Session


@pytest.fixture(autouse=True)
def _stable_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests must not depend on the developer's colours, width or model files."""
    for var in ("NO_COLOR", "FORCE_COLOR", "REASON_FORCE_TTY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("REASON_MODELS", raising=False)


@pytest.fixture(autouse=True)
def _private_history(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Runs (in-process and subprocess) log to a per-test file, never the user's history."""
    path = tmp_path / "history.sqlite3"
    monkeypatch.setenv("REASON_LOGS_PATH", str(path))
    monkeypatch.delenv("REASON_NO_LOG", raising=False)
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The default model, resolved from its installed PyPI package as a user's run would."""
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.resolve import resolve_model

    return Path(resolve_model(None, load_catalog()).path)


@pytest.fixture(scope="session")
def tiny_gguf(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny.gguf"
    return write_tiny_gguf(smollm2_path, out, TinyShape())


@pytest.fixture(scope="session")
def tiny_model(tiny_gguf: Path) -> Iterator[object]:
    from reasoncli.engine.model import LlamaModel

    with LlamaModel(tiny_gguf) as model:
        yield model


@pytest.fixture(scope="session")
def threads() -> int:
    return int(os.environ.get("REASON_TEST_THREADS", "2"))


@pytest.fixture(scope="module")
def session(tiny_gguf: Path, threads: int) -> Iterator[Session]:
    """The tiny model loaded as a `Session`, shared by one test module's tests."""
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.resolve import resolve_model
    from reasoncli.session import Session, SessionOptions

    s = Session.load(resolve_model(str(tiny_gguf), load_catalog()), SessionOptions(threads=threads))
    yield s
    s.close()


@pytest.fixture(scope="module")
def llama_server(tiny_gguf: Path) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` on the tiny GGUF, served as "tiny"; one per test module."""
    from remote_support import LlamaServer

    with LlamaServer(tiny_gguf, alias="tiny", n_ctx=1024) as server:
        yield server


@pytest.fixture(scope="module")
def _module_proxy(llama_server: LlamaServer) -> Iterator[FaultProxy]:
    from remote_support import FaultProxy

    with FaultProxy(llama_server.base_url) as proxy:
        yield proxy


@pytest.fixture()
def proxy(_module_proxy: FaultProxy) -> FaultProxy:
    """The fault proxy in front of `llama_server`, its script and records cleared per test."""
    _module_proxy.reset()
    return _module_proxy
