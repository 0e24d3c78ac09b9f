"""`reason` against llama.cpp's own llama-server on loopback, serving the tiny generated model:
`n` found from the server's slots and sibling branches sent as one request, a vote through the
CLI, a thinking budget passed through to the server's template, and the errors a real
llama-server gives.

The binary, first found of: $REASON_LLAMA_SERVER; the build of the vendored llama.cpp that
`bash benchmarks/llama_server.sh` leaves in ~/.cache/reasoncli-bench (minutes to build, so
never built here: the README's test command builds it first). Skipped, with the reason, when
neither is there. A prebuilt binary is no substitute: one built on another CPU dies with SIGILL
on a CPU without the instructions it was compiled for (the prebuilt wheel tried before did, on
an AMD EPYC without AMX).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from remote_support import FaultProxy
from test_cli import one_error_line, reason
from tiny_gguf import TinyShape, write_tiny_gguf

from reasoncli.errors import ExitCode
from reasoncli.events import discard
from reasoncli.models.catalog import load_catalog
from reasoncli.remote.session import RemoteRequest, RemoteSession, open_remote_session
from reasoncli.results import Result
from reasoncli.strategies.base import StrategyOptions, get_strategy

ALIAS = "tiny"
BUILT = Path.home() / ".cache/reasoncli-bench/llama.cpp/build/bin/llama-server"
# A Qwen3-style template that opens a thought in the generation prompt: llama-server then
# parses <think>…</think> out of the output and applies a thinking budget to it.
THINK_TEMPLATE = (
    "{%- for message in messages -%}<|im_start|>{{ message.role }}\n"
    "{% if message.role == 'assistant' and message.reasoning_content %}<think>\n"
    "{{ message.reasoning_content }}\n</think>\n\n{% endif %}{{ message.content }}<|im_end|>\n"
    "{% endfor -%}{%- if add_generation_prompt -%}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{%- endif -%}"
)


def find_llama_server() -> tuple[list[str], dict[str, str]] | str:
    """(command prefix, environment) of a llama-server, or why there is none."""
    given = os.environ.get("REASON_LLAMA_SERVER")
    if given:
        if os.access(given, os.X_OK):
            return [given], dict(os.environ)
        return f"REASON_LLAMA_SERVER={given} is not an executable file"
    if os.access(BUILT, os.X_OK):
        return [str(BUILT)], dict(os.environ)
    return (
        f"no llama-server: build one with `bash benchmarks/llama_server.sh` (it lands in "
        f"{BUILT}) or set REASON_LLAMA_SERVER"
    )


class LlamaCppServer:
    """llama-server on 127.0.0.1, on the port it picks itself (--port 0)."""

    def __init__(self, model: Path, *, slots: int, ctx_per_slot: int = 512) -> None:
        found = find_llama_server()
        if isinstance(found, str):
            pytest.skip(found)
        self.command, self.env = found
        self.args = [
            "-m", str(model), "--host", "127.0.0.1", "--port", "0", "--alias", ALIAS,
            "-np", str(slots), "-c", str(slots * ctx_per_slot), "-t", "1", "-tb", "1",
            "--no-webui", "--no-warmup",
        ]  # fmt: skip
        self.log = Path(tempfile.mkdtemp(prefix="llama-server-")) / "server.log"
        self.root = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def __enter__(self) -> LlamaCppServer:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.command + self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited {self.proc.returncode}:\n{self.tail()}")
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.text())
            if m:
                self.root = m.group(1)
                if get(self.root + "/health")[0] == 200:
                    return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"llama-server not ready after 60 s:\n{self.tail()}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def tokens(self, text: str) -> int:
        request = urllib.request.Request(
            self.root + "/tokenize",
            data=json.dumps({"content": text}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return len(json.load(response)["tokens"])


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (urllib.error.URLError, OSError, ValueError):
        return -1, {}


@pytest.fixture(scope="module")
def server4(tiny_gguf: Path) -> Iterator[LlamaCppServer]:
    """Four slots: `n` up to 4 from one prefill."""
    with LlamaCppServer(tiny_gguf, slots=4) as s:
        yield s


@pytest.fixture(scope="module")
def server1(tiny_gguf: Path) -> Iterator[LlamaCppServer]:
    """One slot: no `n`, one request a branch."""
    with LlamaCppServer(tiny_gguf, slots=1) as s:
        yield s


@pytest.fixture(scope="module")
def think_server(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaCppServer]:
    """The tiny model with a thinking chat template."""
    model = tmp_path_factory.mktemp("think") / "think.gguf"
    write_tiny_gguf(smollm2_path, model, TinyShape(), chat_template=THINK_TEMPLATE)
    with LlamaCppServer(model, slots=2) as s:
        yield s


@pytest.fixture()
def proxy4(server4: LlamaCppServer) -> Iterator[FaultProxy]:
    """Records what `reason` sends to the 4-slot server."""
    with FaultProxy(server4.base_url) as p:
        yield p


def session_on(base_url: str) -> RemoteSession:
    return open_remote_session(RemoteRequest(base_url=base_url, model=ALIAS), load_catalog())


def bodies(proxy: FaultProxy) -> list[dict[str, object]]:
    return [r.json() for r in proxy.requests if r.path.endswith("completions")]


def vote(session: RemoteSession, branches: int, *, seed: int = 7, max_tokens: int = 8) -> Result:
    options = StrategyOptions(branches=branches, max_tokens=max_tokens, seed=seed)
    try:
        return get_strategy("vote").run("What is 2+2?", session, options, discard)
    finally:
        session.close()


# -- `n` from the slots ----------------------------------------------------------------------
def test_slots_turn_n_on(server4: LlamaCppServer, server1: LlamaCppServer) -> None:
    four, one = session_on(server4.base_url), session_on(server1.base_url)
    try:
        assert get(server4.root + "/props")[1]["total_slots"] == 4
        assert (four.backend.use_n, four.backend.max_n) == (True, 4)
        assert (one.backend.use_n, one.backend.max_n) == (False, None)
        assert four.style is not None  # the template from /props: the completions API
    finally:
        four.close()
        one.close()


def test_siblings_go_out_as_one_request_with_n(proxy4: FaultProxy) -> None:
    result = vote(session_on(proxy4.base_url), 6, seed=7)
    sent = bodies(proxy4)
    # 4 slots: 4 siblings in one request, the other 2 in a second (the two go out at once, in
    # either order); llama-server gives child j of a request seed + j, so branch i keeps
    # seed 7 + i as on the local engine. Any retry, on a busy machine, goes out alone.
    assert sorted((b["n"], b["seed"]) for b in sent if "n" in b) == [(2, 11), (4, 7)], sent
    assert len([b for b in sent if "n" in b]) == 2
    assert len(result.branches) == 6
    assert all(b.finish_reason in ("length", "eos") and b.tokens > 0 for b in result.branches)
    assert len({b.text for b in result.branches}) == 6  # six seeds, six samples


def test_one_slot_sends_a_request_a_branch(server1: LlamaCppServer) -> None:
    with FaultProxy(server1.base_url) as proxy:
        result = vote(session_on(proxy.base_url), 4, seed=7)
        sent = bodies(proxy)
    assert all("n" not in b for b in sent)
    assert {b["seed"] for b in sent} == {7, 8, 9, 10}
    assert all(b.finish_reason in ("length", "eos") and b.tokens > 0 for b in result.branches)


def test_n_beyond_the_slots_falls_back_to_a_request_a_branch(proxy4: FaultProxy) -> None:
    session = session_on(proxy4.base_url)
    session.backend.max_n = 8  # more than the server's 4 slots: it answers 400
    result = vote(session, 8, seed=3)
    sent = bodies(proxy4)
    assert sent[0]["n"] == 8 and all("n" not in b for b in sent[1:])
    assert len(sent) >= 9 and not session.backend.use_n  # alone they went through
    assert all(b.finish_reason in ("length", "eos") for b in result.branches)


def test_a_refusal_that_is_not_about_n_keeps_n(proxy4: FaultProxy) -> None:
    """A prompt longer than a slot's context: 400 for the `n` request and for each branch
    alone, so `n` stays on for the questions after it."""
    session = session_on(proxy4.base_url)
    options = StrategyOptions(branches=2, max_tokens=4, seed=1)
    try:
        result = get_strategy("vote").run("word " * 700, session, options, discard)
        assert session.backend.use_n
    finally:
        session.close()
    assert [b.finish_reason for b in result.branches] == ["failed", "failed"]
    assert all("context size" in (b.error or "") for b in result.branches)
    assert [b.get("n") for b in bodies(proxy4)] == [2, None, None]


# -- through the CLI -------------------------------------------------------------------------
def test_cli_vote_through_llama_server(proxy4: FaultProxy) -> None:
    proc = reason(
        "ask", "What is 2+2?", "--base-url", proxy4.base_url, "--model", ALIAS,
        "-n", "4", "--max-tokens", "8", "--seed", "1", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = json.loads(proc.stdout)
    assert data["backend"]["name"] == "openai" and data["backend"]["api"] == "completions"
    assert len(data["branches"]) == 4
    assert all(b["finish_reason"] in ("length", "eos") for b in data["branches"])
    answers = Counter(b["answer"] for b in data["branches"] if b["answer"] is not None)
    assert {v["answer"]: v["count"] for v in data["votes"]} == answers
    if answers:  # random weights: whatever the answers, the vote's is a most common one
        assert answers[data["answer"]] == max(answers.values())
    assert bodies(proxy4)[0]["n"] == 4
    assert all("n" not in b for b in bodies(proxy4)[1:])  # retries, on a busy machine


def test_cli_refuses_the_server_root_without_v1(server4: LlamaCppServer) -> None:
    """llama-server lists its models at its root too, where /completions is its own API."""
    proc = reason("ask", "2+2?", "--base-url", server4.root, "-n", "2", "--max-tokens", "4")
    assert proc.returncode == ExitCode.PROTOCOL, proc.stderr
    assert f"should end in /v1 ({server4.root}/v1)" in one_error_line(proc)


def test_cli_unknown_model(server4: LlamaCppServer) -> None:
    proc = reason("ask", "2+2?", "--base-url", server4.base_url, "--model", "nope", "-n", "2")
    assert proc.returncode != 0
    assert f"has no model 'nope'; it serves: {ALIAS}" in one_error_line(proc)


# -- a thinking budget the server applies --------------------------------------------------
def chat_session(base_url: str, budget: int | None) -> RemoteSession:
    """A session with no prompt template of its own: /chat/completions, the server's template,
    and the budget passed through (`thinking_budget_tokens`)."""
    session = replace(session_on(base_url), style=None)
    session.backend.chat_api = True
    session.pass_thinking_budget(budget)
    return session


def test_thinking_budget_reaches_the_server(think_server: LlamaCppServer) -> None:
    with FaultProxy(think_server.base_url) as proxy:
        capped = vote(chat_session(proxy.base_url, 3), 2, seed=1, max_tokens=16)
        sent = bodies(proxy)
    free = vote(chat_session(think_server.base_url, None), 2, seed=1, max_tokens=16)
    assert all(b["thinking_budget_tokens"] == 3 for b in sent)
    assert sent[0]["n"] == 2 and "messages" in sent[0]
    for b in capped.branches:
        # the server parsed the thought out and cut it at the budget; `reason` puts it back
        # between think tags, and the answer comes after it
        assert b.text.startswith("<think>") and "</think>" in b.text, b.text
        thought = b.text.split("</think>", 1)[0].removeprefix("<think>")
        assert think_server.tokens(thought) <= 3
    for b in free.branches:  # no budget: the whole branch is thinking
        assert b.text.startswith("<think>") and "</think>" not in b.text
        assert b.tokens == 16 and b.finish_reason == "length"
