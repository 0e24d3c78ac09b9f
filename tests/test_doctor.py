"""`reason doctor` and the fit estimate it shares with `reason ask`.

Doctor reads the GGUF header; ask measures the loaded model. These tests pin that both feed the
same numbers into the same function, on the generated tiny model and the embedded SmolLM2, and
that a run doctor refuses is refused by ask with the same message, whose suggestion then runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_run import run_cli

from reasoncli.doctor import FitRequest, assess_file, offload_from_gguf
from reasoncli.engine.backend import detect_backend, parse_system_info
from reasoncli.engine.machine import SAFETY, MemoryInfo, parse_bytes
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.sizing import (
    BUFFER_SLACK,
    N_UBATCH,
    ContextRequest,
    Offload,
    assess_request,
    estimate_memory,
    offload_for,
    plan_context,
)
from reasoncli.errors import ResourceError
from reasoncli.models.gguf_file import kv_bytes_per_token, read_gguf_info

GIB = 2**30


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REASON_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("REASON_MEMORY_LIMIT", raising=False)


def run(*args: str) -> tuple[int, str, str]:
    """The real CLI in-process, through its error boundary: (exit code, stdout, stderr)."""
    done = run_cli(*args, columns=None)
    return done.returncode, done.stdout, done.stderr


# ------------------------------------------------------------------------------ the estimate


def test_estimate_is_weights_plus_kv_plus_buffers_split_by_offload() -> None:
    kw: dict[str, Any] = {"weights_bytes": 4000, "kv_bytes_per_token": 10, "n_seq": 3}
    buffers = 4 * 100 * (N_UBATCH + 3) + BUFFER_SLACK
    cpu = estimate_memory(**kw, n_ctx_seq=256, offload=Offload(0, 4, 100))
    assert (cpu.kv_bytes, cpu.buffer_bytes) == (3 * 256 * 10, buffers)
    assert (cpu.ram_bytes, cpu.vram_bytes) == (4000 + 7680 + buffers, 0)
    gpu = estimate_memory(**kw, n_ctx_seq=256, offload=Offload(4, 4, 100))
    assert (gpu.ram_bytes, gpu.vram_bytes) == (0, 4000 + 7680 + buffers)
    half = estimate_memory(**kw, n_ctx_seq=256, offload=Offload(2, 4, 100))
    assert (half.ram_bytes, half.vram_bytes) == (5840, 5840 + buffers)
    assert cpu.total_bytes == gpu.total_bytes == half.total_bytes


def test_vram_refusal_suggests_fewer_gpu_layers() -> None:
    a = assess_request(
        ContextRequest(
            n_prompt=100,
            max_new_tokens=512,
            max_branches=4,
            n_ctx_train=4096,
            kv_bytes_per_token=100_000,
            weights_bytes=3 * GIB,
        ),
        offload=Offload(28, 28, 150_000),
        memory=MemoryInfo(ram_available=64 * GIB, vram_free=2 * GIB),
    )
    assert a.fit.fits is False and a.fit.where == "VRAM"
    assert a.max_gpu_layers is not None and 0 < a.max_gpu_layers < 28
    assert a.max_branches is None  # no branch count rescues 3 GiB of weights in 1.8 GiB
    msg = a.refusal()
    assert "GiB of GPU memory (weights 3.0 GiB + KV cache" in msg
    assert f"try --gpu-layers {a.max_gpu_layers} (keep the rest in RAM)" in msg
    partial = Offload(a.max_gpu_layers, 28, 150_000)
    assert estimate_memory(
        weights_bytes=3 * GIB, kv_bytes_per_token=100_000, n_seq=5, n_ctx_seq=a.n_ctx_seq,
        offload=partial,
    ).vram_bytes <= 2 * GIB * SAFETY  # fmt: skip


def test_unknown_memory_is_not_a_refusal() -> None:
    request = ContextRequest(
        n_prompt=10, max_new_tokens=10, max_branches=2, n_ctx_train=0, kv_bytes_per_token=1 << 30
    )
    plan = plan_context(request, memory=MemoryInfo(ram_available=None))
    assert plan.n_seq_max == 4 and plan.branch_limit == 2  # prompt, 2 branches, a spare


def test_structural_limits_still_raise() -> None:
    with pytest.raises(ResourceError, match="context window of 4096"):
        assess_request(
            ContextRequest(
                n_prompt=100, max_new_tokens=5000, max_branches=1, n_ctx_train=4096,
                kv_bytes_per_token=1,
            ),
            memory=MemoryInfo(None),
        )  # fmt: skip


@pytest.mark.parametrize(("text", "n"), [("8G", 8 * GIB), ("512MiB", 512 * 2**20), ("1000", 1000)])
def test_parse_bytes(text: str, n: int) -> None:
    assert parse_bytes(text) == n


def test_parse_system_info() -> None:
    cuda = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | "
    assert parse_system_info(cuda) == (["CUDA", "CPU"], ["SSE3", "AVX2"])
    metal = "Metal : EMBED_LIBRARY = 1 | BF16 = 1 | CPU : NEON = 1 | ARM_FMA = 1 | "
    assert parse_system_info(metal) == (["Metal", "CPU"], ["NEON", "ARM_FMA"])


# ------------------------------------------------ doctor's inputs = the loaded model's inputs


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_doctor_and_the_loaded_model_agree(
    which: str, tiny_gguf: Path, smollm2_path: Path, tiny_model: LlamaModel
) -> None:
    path = tiny_gguf if which == "tiny" else smollm2_path
    model = tiny_model if which == "tiny" else LlamaModel(smollm2_path)
    info = read_gguf_info(path)
    backend = detect_backend()
    assert info.tensor_bytes == model.size_bytes
    assert kv_bytes_per_token(info) == model.kv_bytes_per_token
    assert offload_from_gguf(info, backend, None) == offload_for(model)
    memory = MemoryInfo(ram_available=8 * GIB)
    request = FitRequest(branches=8, max_tokens=512, prompt_tokens=100)
    fit = assess_file(which, path, request, backend, memory)
    plan = plan_context(  # exactly what Session.open_engine passes
        ContextRequest(
            n_prompt=100,
            max_new_tokens=512,
            max_branches=8,
            n_ctx_train=model.n_ctx_train,
            kv_bytes_per_token=model.kv_bytes_per_token,
            weights_bytes=model.size_bytes,
        ),
        offload=offload_for(model),
        memory=memory,
    )
    assert fit.assessment is not None and fit.assessment.plan == plan
    if model is not tiny_model:
        model.close()


# ----------------------------------------------------------------------------------- the CLI


def test_doctor_json(tiny_gguf: Path) -> None:
    code, out, err = run("doctor", "--json", "-m", str(tiny_gguf), "-n", "4")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["backend"]["name"] == ("CPU" if not data["backend"]["gpu_offload"] else data[
        "backend"]["name"])  # fmt: skip
    assert "CPU" in data["backend"]["compiled"]
    assert data["threads"]["default"] >= 1 and data["memory"]["ram_available"] > 0
    assert data["request"] == {
        "branches": 4, "max_tokens": 512, "prompt_tokens": 256, "gpu_layers": None,
    }  # fmt: skip
    (m,) = data["models"]
    info = read_gguf_info(tiny_gguf)
    assert m["name"] == "tiny" and m["fits"] is True and m["n_layer"] == 2
    assert m["weights_bytes"] == info.tensor_bytes
    assert m["kv_bytes"] == 6 * m["n_ctx_seq"] * kv_bytes_per_token(info)  # prompt, 4, spare
    assert m["max_branches"] == 254 and m["max_tokens"] >= 512


def test_doctor_text_lists_the_installed_models() -> None:
    code, out, err = run("doctor", "-n", "2", "--max-tokens", "64")
    assert code == 0 and err == ""
    for expected in ("backend", "threads", "RAM", "GPU", "What fits 2 branches x 64"):
        assert expected in out, expected
    smol = next(line for line in out.splitlines() if line.startswith("smollm2-135m"))
    assert " CPU " in smol or " GPU" in smol
    assert " yes " in smol


def test_ask_refuses_what_doctor_refuses_and_the_suggestion_runs(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = "What is 2+2?"
    code, out, _ = run(
        "ask", question, "-m", str(tiny_gguf), "-n", "1", "--max-tokens", "4", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["backend"]["n_layer"] == 2 and result["backend"]["threads"] >= 1
    assert result["backend"]["name"] == ("CPU" if result["backend"]["gpu_layers"] == 0 else
        result["backend"]["name"])  # fmt: skip
    n_prompt = result["prompt_tokens"]

    # A memory limit that 16 branches x 8 tokens just exceed.
    info = read_gguf_info(tiny_gguf)
    need = assess_request(
        ContextRequest(
            n_prompt=n_prompt,
            max_new_tokens=8,
            max_branches=16,
            n_ctx_train=info.context_length or 0,
            kv_bytes_per_token=kv_bytes_per_token(info),
            weights_bytes=info.tensor_bytes,
        ),
        offload=offload_from_gguf(info, detect_backend(), None),
        memory=MemoryInfo(None),
    ).fit.need_bytes
    monkeypatch.setenv("REASON_MEMORY_LIMIT", str(int(need / SAFETY) - 1))

    code, out, _ = run("doctor", "--json", "-m", str(tiny_gguf), "-n", "16", "--max-tokens", "8",
        "--prompt-tokens", str(n_prompt),
    )  # fmt: skip
    (verdict,) = json.loads(out)["models"]
    assert verdict["fits"] is False and verdict["max_branches"] == 15
    # At the smallest context, fewer tokens cannot help: only fewer branches.
    assert verdict["message"].endswith("is available; try --branches 15")

    args = ("ask", question, "-m", str(tiny_gguf), "--max-tokens", "8", "--json")
    code, out, err = run(*args, "-n", "16")
    assert code == 5 and out == ""
    assert err.strip() == f"Error: {verdict['message']}"

    code, out, err = run(*args, "-n", "15")
    assert code == 0, err
    assert len(json.loads(out)["branches"]) == 15


def test_nvidia_gpu_without_a_cuda_build_gets_the_reinstall_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if detect_backend().gpu_offload:
        pytest.skip("this llama-cpp-python has a GPU backend")
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 143771, 140000'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    code, out, _ = run("doctor", "--json", "-m", "smollm2")
    data = json.loads(out)
    assert data["gpus"] == [
        {
            "name": "NVIDIA H200",
            "backend": None,
            "free_bytes": 140000 * 2**20,
            "total_bytes": 143771 * 2**20,
            "source": "nvidia-smi",
        }
    ]
    assert data["hints"] and 'CMAKE_ARGS="-DGGML_CUDA=on"' in data["hints"][0]
    assert data["models"][0]["vram_bytes"] == 0  # a CPU build plans for RAM only
