"""The remote backend against a real llama_cpp.server on loopback, with faults injected by a
proxy in front of it. The server serves the generated tiny model under the id "tiny"."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cli_run import Run, ctrl_c_after_a_token, run_cli, start
from remote_support import FaultProxy, LlamaServer, free_port
from test_cli import one_error_line

from reasoncli.cli.io import Terminal
from reasoncli.cli.runner import OutputRequest, write_result
from reasoncli.errors import BranchesFailed, ExitCode, ReasonError, UsageError
from reasoncli.events import discard
from reasoncli.models.catalog import load_catalog
from reasoncli.remote.backend import sampling_fields
from reasoncli.remote.session import RemoteRequest, RemoteSession, open_remote_session
from reasoncli.results import BranchResult, Result
from reasoncli.strategies.base import REGISTRY, StrategyOptions, get_strategy, strategy_names

ALIAS = "tiny"  # what the llama_server fixture (conftest.py) serves the tiny GGUF as
API_KEY = "sk-test-0123456789-secret"


def proxy_entry(proxy: FaultProxy, tiny_gguf: Path, path: Path) -> Path:
    """A user models.yaml naming the proxied server, prompts rendered from the tiny GGUF."""
    path.write_text(
        "models:\n"
        "  tiny-remote:\n"
        "    source:\n"
        "      openai:\n"
        f"        base_url: {proxy.base_url}\n"
        f"        model: {ALIAS}\n"
        f"        template_from: {tiny_gguf}\n"
        "        max_concurrency: 4\n"
        "        timeout_s: 5\n"
    )
    return path


@pytest.fixture()
def catalog_file(tmp_path: Path, proxy: FaultProxy, tiny_gguf: Path) -> Path:
    return proxy_entry(proxy, tiny_gguf, tmp_path / "models.yaml")


def open_session(
    proxy: FaultProxy,
    tiny_gguf: Path | None,
    retries: int | None = None,
    stall_s: float | None = None,
    **kw: object,
) -> RemoteSession:
    """A session on the proxied server. With `tiny_gguf`, a registry entry renders prompts from
    its chat template (completions API); without, no template is known (chat API)."""
    if tiny_gguf is None:
        request = RemoteRequest(base_url=proxy.base_url, model=ALIAS, **kw)  # type: ignore[arg-type]
        session = open_remote_session(request, load_catalog())
    else:
        entry = proxy_entry(proxy, tiny_gguf, Path(tempfile.mkdtemp()) / "models.yaml")
        request = RemoteRequest(model="tiny-remote", **kw)  # type: ignore[arg-type]
        session = open_remote_session(request, load_catalog(entry))
    if retries is not None:
        session.backend.config = replace(session.backend.config, retries=retries)
    if stall_s is not None:  # also for the first chunk, which normally may wait in a queue
        config = session.backend.config
        session.backend.config = replace(config, timeout_s=stall_s, queue_timeout_s=stall_s)
    return session


def generation_bodies(proxy: FaultProxy) -> list[dict[str, object]]:
    """The completion and chat requests the proxy saw (not tokenize calls), in order."""
    return [r.json() for r in proxy.requests if r.path.endswith("completions")]


def small_options() -> StrategyOptions:
    return StrategyOptions(
        branches=3,
        max_tokens=8,
        seed=1,
        step_tokens=4,
        beam_width=2,
        rounds=2,
        budget_tokens=48,
        pilot=2,
        warmup=2,
        top_logprobs=2,
        verifier="confidence",
    )


# -- every strategy, end to end --------------------------------------------------------------
@pytest.mark.parametrize("name", strategy_names())
def test_every_strategy_runs_through_the_server(
    name: str, proxy: FaultProxy, tiny_gguf: Path
) -> None:
    session = open_session(proxy, tiny_gguf)
    try:
        result = get_strategy(name).run("What is 2 + 3?", session, small_options(), discard)
    finally:
        session.close()
    assert result.strategy == name and result.model == "tiny-remote"
    assert result.branches and result.generated_tokens > 0
    assert not any(b.finish_reason == "failed" for b in result.branches)
    assert all(b.text or b.tokens == 0 for b in result.branches)
    # Every request carried the rendered prompt: the server saw completions, never chat.
    posts = generation_bodies(proxy)
    assert posts and all("prompt" in b and b["prompt"].startswith("<|im_start|>") for b in posts)
    if REGISTRY[name].info.continues and name != "think":
        # Continuations send the shared prompt plus the branch's text: same prefix, longer.
        base = min(len(b["prompt"]) for b in posts)
        assert any(len(b["prompt"]) > base for b in posts)


def test_confidence_needs_logprobs_and_gets_them(proxy: FaultProxy, tiny_gguf: Path) -> None:
    session = open_session(proxy, tiny_gguf)
    try:
        result = get_strategy("weighted-vote").run("2+2?", session, small_options(), discard)
    finally:
        session.close()
    assert all(b.confidence is not None and b.confidence > 0 for b in result.branches)
    assert all(b.get("logprobs") == 2 for b in generation_bodies(proxy))


def test_chat_api_without_a_template(proxy: FaultProxy) -> None:
    """No template known: branches use /chat/completions; prefix strategies are refused."""
    session = open_session(proxy, None)
    try:
        assert session.style is None
        result = get_strategy("vote").run("What is 2 + 3?", session, small_options(), discard)
        assert len(result.branches) == 3 and result.generated_tokens > 0
        assert all("messages" in b for b in generation_bodies(proxy))
        with pytest.raises(UsageError, match="prompt template"):
            session.check_strategy(REGISTRY["beam"].info)
        session.check_strategy(REGISTRY["vote"].info)  # fine
    finally:
        session.close()


def test_sampling_is_sent_explicitly() -> None:
    from reasoncli.engine.sampling import Sampling

    fields = sampling_fields(Sampling(temperature=0.6, top_p=0.9, top_k=20, min_p=0.0, seed=7))
    assert fields == {
        "temperature": 0.6,
        "top_p": 0.9,
        "seed": 7,
        "top_k": 20,
        "repeat_penalty": 1.0,
    }
    assert sampling_fields(Sampling(temperature=0.0))["temperature"] == 0.0


def test_seeded_runs_are_reproducible(proxy: FaultProxy, tiny_gguf: Path) -> None:
    texts = []
    for _ in range(2):
        session = open_session(proxy, tiny_gguf)
        try:
            r = get_strategy("vote").run("2+2?", session, small_options(), discard)
        finally:
            session.close()
        texts.append([b.text for b in r.branches])
    assert texts[0] == texts[1]
    assert len(set(texts[0])) > 1  # seed+i per branch: branches differ


# -- concurrency and `n` ---------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_is_bounded(limit: int, proxy: FaultProxy, tiny_gguf: Path) -> None:
    session = open_session(proxy, tiny_gguf, max_concurrency=limit)
    try:
        options = StrategyOptions(branches=6, max_tokens=6, seed=3)
        result = get_strategy("vote").run("2+2?", session, options, discard)
    finally:
        session.close()
    assert len(result.branches) == 6
    assert proxy.max_in_flight == limit  # the server queues them, so all `limit` stay open
    assert proxy.counts["/v1/completions"] == 6


def test_n_is_tried_then_dropped_when_the_server_ignores_it(
    proxy: FaultProxy, tiny_gguf: Path
) -> None:
    session = open_session(proxy, tiny_gguf)
    assert not session.backend.use_n  # llama_cpp.server does not say it is vLLM or SGLang
    session.backend.use_n = True  # as for a server that lists itself as one
    try:
        options = StrategyOptions(branches=4, max_tokens=12, seed=5)
        result = get_strategy("vote").run("2+2?", session, options, discard)
    finally:
        session.close()
    assert generation_bodies(proxy)[0]["n"] == 4  # one request for all four siblings first
    assert not session.backend.use_n  # llama_cpp.server answered with one choice only
    assert all("n" not in b for b in generation_bodies(proxy)[1:])
    assert len(result.branches) == 4 and all(b.tokens > 0 for b in result.branches)


# -- faults ----------------------------------------------------------------------------------
def test_votes_survive_errors_drops_and_stalls(proxy: FaultProxy, tiny_gguf: Path) -> None:
    session = open_session(proxy, tiny_gguf, stall_s=1.0, max_concurrency=1)
    proxy.script(["500", "429", "drop:3", "stall:4"])
    try:
        options = StrategyOptions(branches=3, max_tokens=12, seed=2)
        result = get_strategy("vote").run("2+2?", session, options, discard)
    finally:
        session.close()
    assert [b.finish_reason for b in result.branches] != ["failed"] * 3
    assert not any(b.finish_reason == "failed" for b in result.branches)
    assert all(b.tokens > 0 for b in result.branches)
    prompts = [b["prompt"] for b in generation_bodies(proxy)]
    assert len(prompts) >= 3 + 4
    # The dropped stream was resumed from the text it had already delivered.
    assert any(len(p) > len(prompts[0]) and p.startswith(prompts[0]) for p in prompts)


def test_a_branch_that_keeps_failing_is_reported_and_the_vote_goes_on(
    proxy: FaultProxy, tiny_gguf: Path
) -> None:
    session = open_session(proxy, tiny_gguf, retries=0, max_concurrency=1)
    proxy.script(["503"])  # the first branch's only try
    try:
        options = StrategyOptions(branches=3, max_tokens=8, seed=2)
        result = get_strategy("vote").run("2+2?", session, options, discard)
    finally:
        session.close()
    failed = [b for b in result.branches if b.finish_reason == "failed"]
    assert len(failed) == 1 and failed[0].answer is None
    assert failed[0].error is not None and "HTTP 503" in failed[0].error
    assert "after 1 attempt" in failed[0].error
    others = [b for b in result.branches if b.finish_reason != "failed"]
    assert len(others) == 2 and all(b.tokens > 0 for b in others)
    assert sum(g.count for g in result.votes) <= 2  # the failed branch does not vote


# -- the command line ------------------------------------------------------------------------
def remote_env(catalog_file: Path | None = None, **extra: str) -> dict[str, str | None]:
    """The variables a run sees changed: every REASON_ one cleared but the test's private run
    history (conftest), the catalog and `extra` set."""
    keep = ("REASON_LOGS_PATH",)
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("REASON_") and k not in keep
    }
    if catalog_file is not None:
        env["REASON_MODELS"] = str(catalog_file)
    return {**env, **extra}


def reason(*args: str, env: dict[str, str | None]) -> Run:
    """`reason` in this process (tests/cli_run.py `run_cli`) against the loopback servers."""
    return run_cli(*args, env={"NO_COLOR": None, **env})


def test_cli_ask_through_a_models_yaml_entry(catalog_file: Path, proxy: FaultProxy) -> None:
    proc = reason(
        "ask",
        "What is 2+2?",
        "-m",
        "tiny-remote",
        "-n",
        "3",
        "--max-tokens",
        "8",
        "--json",
        env=remote_env(catalog_file),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "tiny-remote" and len(data["branches"]) == 3
    assert data["backend"]["name"] == "openai" and data["backend"]["api"] == "completions"
    assert data["backend"]["base_url"] == proxy.base_url


@pytest.mark.parametrize("mode", ["--json", "--plain"])
def test_cli_every_branch_failing_is_an_error_not_an_empty_answer(
    catalog_file: Path, proxy: FaultProxy, mode: str
) -> None:
    # 400 is not retried: each generation request fails once and its branches with it.
    proxy.script(["400"] * 12)
    args = ("ask", "2+2?", "-m", "tiny-remote", "-n", "3", "--max-tokens", "8")
    proc = reason(*args, *([mode] if mode == "--json" else []), env=remote_env(catalog_file))
    assert proc.returncode == ExitCode.BRANCHES_FAILED, (proc.stdout, proc.stderr)
    line = one_error_line(proc)
    assert "all 3 branch(es) failed" in line and "HTTP 400" in line
    if mode == "--json":  # the record still comes out, for whoever reads it
        data = json.loads(proc.stdout)
        assert data["answer"] is None
        assert [b["finish_reason"] for b in data["branches"]] == ["failed"] * 3
    else:
        assert proc.stdout == ""


def test_cli_branches_without_an_extractable_answer_are_a_result_not_a_failure(
    catalog_file: Path, proxy: FaultProxy
) -> None:
    # Branches that generated are the model's result, with or without an answer in their text
    # (two tokens of a random-weight model rarely hold one): --json prints it and exits 0.
    proc = reason(
        "ask", "2+2?", "-m", "tiny-remote", "-n", "2", "--max-tokens", "2", "--json",
        env=remote_env(catalog_file),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["branches"]) == 2
    assert all(b["finish_reason"] != "failed" and b["error"] is None for b in data["branches"])


@pytest.mark.parametrize(
    ("reasons", "failing"),
    [
        (["failed", "failed"], True),
        (["stop", "length"], False),  # text without an answer in it: a result
        (["failed", "stop"], False),  # one branch generated: its no-answer is the result
    ],
)
def test_only_a_run_whose_every_branch_failed_is_an_error(
    reasons: list[str], failing: bool
) -> None:
    branches = [
        BranchResult(i, "text", None, 4, r, error="HTTP 400" if r == "failed" else None)
        for i, r in enumerate(reasons)
    ]
    result = Result("q", "vote", "m", None, 0.0, branches=branches)
    out, err = io.StringIO(), io.StringIO()
    term = Terminal(stdout=out, stderr=err)
    if failing:
        with pytest.raises(BranchesFailed, match="all 2 branch"):
            write_result(result, OutputRequest(json=True), term)
        assert json.loads(out.getvalue())["answer"] is None
    else:
        assert write_result(result, OutputRequest(json=True), term) == ExitCode.OK
        with pytest.raises(ReasonError, match="no answer could be extracted") as plain:
            write_result(result, OutputRequest(), term)
        assert not isinstance(plain.value, BranchesFailed)
        assert ("1 of them failed: HTTP 400" in str(plain.value)) == ("failed" in reasons)


def test_cli_base_url_from_the_environment(proxy: FaultProxy) -> None:
    proc = reason(
        "ask",
        "2+2?",
        "-n",
        "2",
        "--max-tokens",
        "6",
        "--json",
        env=remote_env(REASON_BASE_URL=proxy.base_url),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == ALIAS  # the server's only model
    assert data["backend"]["api"] == "chat"  # no template known: the server's chat template


def test_cli_think_refused_without_a_template(proxy: FaultProxy) -> None:
    proc = reason("think", "2+2?", "--base-url", proxy.base_url, "-m", ALIAS, env=remote_env())
    assert proc.returncode == ExitCode.USAGE
    assert "prompt template" in one_error_line(proc)


def test_cli_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = reason("ask", "2+2?", "--base-url", url, "-m", ALIAS, env=remote_env())
    assert proc.returncode == ExitCode.UNREACHABLE
    assert "cannot reach" in one_error_line(proc)


def test_cli_unknown_model(proxy: FaultProxy) -> None:
    proc = reason("ask", "2+2?", "--base-url", proxy.base_url, "-m", "nope", env=remote_env())
    assert proc.returncode == ExitCode.MODEL
    line = one_error_line(proc)
    assert "'nope'" in line and ALIAS in line


def test_cli_server_that_does_not_speak_the_api(proxy: FaultProxy) -> None:
    proxy.always("html")
    proc = reason("ask", "2+2?", "--base-url", proxy.base_url, "-m", ALIAS, env=remote_env())
    assert proc.returncode == ExitCode.PROTOCOL
    assert "not an OpenAI model list" in one_error_line(proc)


def test_cli_wrong_url_path(llama_server: LlamaServer) -> None:
    url = llama_server.base_url + "/nothing"
    proc = reason("ask", "2+2?", "--base-url", url, "-m", ALIAS, env=remote_env())
    assert proc.returncode == ExitCode.PROTOCOL
    assert "should end in /v1" in one_error_line(proc)


@pytest.fixture(scope="module")
def keyed_server(tiny_gguf: Path) -> Iterator[LlamaServer]:
    with LlamaServer(tiny_gguf, alias=ALIAS, n_ctx=512, api_key=API_KEY) as s:
        yield s


def test_cli_api_key_from_env_or_file_never_shown(
    keyed_server: LlamaServer, tmp_path: Path
) -> None:
    url = keyed_server.base_url
    wrong = reason("ask", "2+2?", "--base-url", url, env=remote_env(REASON_API_KEY="sk-wrong"))
    assert wrong.returncode == ExitCode.AUTH
    line = one_error_line(wrong)
    assert "rejected the API key" in line and "sk-wrong" not in line
    missing = reason("ask", "2+2?", "--base-url", url, env=remote_env())
    assert missing.returncode == ExitCode.AUTH

    ok = reason(
        "ask",
        "2+2?",
        "--base-url",
        url,
        "-n",
        "2",
        "--max-tokens",
        "6",
        "--jsonl",
        env=remote_env(REASON_API_KEY=API_KEY),
    )
    assert ok.returncode == 0, ok.stderr
    assert API_KEY not in ok.stdout + ok.stderr
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY + "\n")
    from_file = reason(
        "ask",
        "2+2?",
        "--base-url",
        url,
        "--api-key-file",
        str(key_file),
        "-n",
        "2",
        "--max-tokens",
        "6",
        "--json",
        env=remote_env(),
    )
    assert from_file.returncode == 0, from_file.stderr
    assert API_KEY not in from_file.stdout + from_file.stderr


def test_cli_ctrl_c_cancels_in_flight_requests(catalog_file: Path, proxy: FaultProxy) -> None:
    args = ("ask", "q", "-m", "tiny-remote", "-n", "3", "--max-tokens", "400", "--jsonl")
    changes = remote_env(catalog_file)
    env = {k: v for k, v in {**os.environ, **changes}.items() if v is not None}
    proc = start(*args, env=env)
    result = ctrl_c_after_a_token(proc)  # exit 130, ExitCode.INTERRUPTED
    assert result["event"] == "result" and result["interrupted"] is True
    assert any(b["tokens"] > 0 for b in result["branches"])
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_cli_bench_through_the_server(proxy: FaultProxy, tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text(
        '{"question": "What is 1 + 1?", "answer": "2"}\n'
        '{"question": "What is 2 + 2?", "answer": "4"}\n'
    )
    out = tmp_path / "run.jsonl"
    proc = reason(
        "bench",
        str(data),
        "--strategy",
        "vote",
        "--branches",
        "2",
        "--max-tokens",
        "6",
        "--out",
        str(out),
        "--json",
        env=remote_env(REASON_BASE_URL=proxy.base_url),
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    samples = [x for x in lines if x["type"] == "sample"]
    assert len(samples) == 2 and all(s["branches"] == 2 for s in samples)


# -- models.yaml ------------------------------------------------------------------------------
def test_remote_entries_in_models_yaml(tmp_path: Path) -> None:
    from reasoncli.errors import CatalogError
    from reasoncli.models.install import check_installed

    good = tmp_path / "good.yaml"
    good.write_text(
        "models:\n  big:\n    source:\n      openai:\n"
        "        base_url: https://gpu-box:8000/v1\n        model: Qwen/Qwen2.5-7B-Instruct\n"
    )
    spec = load_catalog(good).get("big")
    assert spec.source.kind == "openai" and spec.source.openai is not None
    assert spec.source.openai.max_concurrency == 8
    assert check_installed(spec).installed and "gpu-box" in check_installed(spec).detail
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  big:\n    source:\n      openai:\n        base_url: gpu-box\n")
    with pytest.raises(CatalogError, match="big"):
        load_catalog(bad)
    both = tmp_path / "both.yaml"
    both.write_text(
        "models:\n  big:\n    source:\n      path: x.gguf\n      openai:\n"
        "        base_url: http://h/v1\n        model: m\n"
    )
    with pytest.raises(CatalogError, match="exactly one"):
        load_catalog(both)


def test_cli_models_show_remote_entry(catalog_file: Path) -> None:
    proc = reason("models", "show", "tiny-remote", env=remote_env(catalog_file))
    assert proc.returncode == 0, proc.stderr
    assert "served by" in proc.stdout


def test_a_server_without_logprobs_stops_confidence_strategies(
    proxy: FaultProxy, tiny_gguf: Path
) -> None:
    from reasoncli.errors import ProtocolError

    session = open_session(proxy, tiny_gguf)
    proxy.always("nologprobs")
    try:
        with pytest.raises(ProtocolError, match="no log-probabilities"):
            get_strategy("weighted-vote").run("2+2?", session, small_options(), discard)
        plain = get_strategy("vote").run("2+2?", session, small_options(), discard)
        assert len(plain.branches) == 3  # strategies without logprobs are unaffected
    finally:
        session.close()
