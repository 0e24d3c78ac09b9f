"""`reason train`: the arithmetic task, the reward adapter, the registry edit, the GGUF round
trip, bad input, and GRPO end to end on the tiny model (train, export, ask, resume)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_run import one_error
from cli_run import reason as run_reason
from tiny_gguf import save_gguf

from reasoncli.bench.datasets import load_dataset
from reasoncli.errors import ModelError, UsageError
from reasoncli.rewards import score_branch
from reasoncli.train import arithmetic
from reasoncli.train.data import file_data, task_data, write_heldout
from reasoncli.train.rewards import REWARD_WEIGHTS, RewardAdapter, completion_text
from reasoncli.train.settings import TrainRequest, TrainSettings, resolve_settings

ROOT = Path(__file__).resolve().parent.parent
GOOD = "We add 2 and 3 to get five in total. The answer is 5."
# The smallest training run: 2 completions of 8 tokens for 1 prompt per step.
TINY_RUN = ("--group-size", "2", "--prompts-per-step", "1", "--max-tokens", "8")


def reason(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {"OMP_NUM_THREADS": "1", **(env or {})}
    return run_reason(*args, input=None, env=env, timeout=timeout, cwd=ROOT)


def reason_here(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI in this process: training imports torch, TRL and datasets for seconds, and the
    tests below pay that once instead of once per run."""
    from reasoncli.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = int(exc.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def needs_training() -> None:
    """Skip without the `train` extra (torch, TRL); else use one torch thread: on 2 shared
    cores, 2 threads spin-wait and steps go 5-10x slower."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("trl")
    torch.set_num_threads(1)


def user_models(folder: Path, text: str = "models: {}\n") -> tuple[Path, dict[str, str]]:
    """A user models.yaml in `folder` holding `text` (where `train` registers the model it
    exports), and the environment that gives `reason` that file and a config folder of its own."""
    models = folder / "models.yaml"
    models.write_text(text)
    return models, {"REASON_MODELS": str(models), "XDG_CONFIG_HOME": str(folder / "config")}


# --------------------------------------------------------------------------------------------
# The arithmetic task
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("difficulty", arithmetic.DIFFICULTIES)
def test_arithmetic_is_seeded_and_correct(difficulty: int) -> None:
    first = arithmetic.generate(50, difficulty=difficulty, seed=1)
    assert first == arithmetic.generate(50, difficulty=difficulty, seed=1)
    assert first != arithmetic.generate(50, difficulty=difficulty, seed=2)
    assert first[:10] == arithmetic.generate(10, difficulty=difficulty, seed=1)  # a prefix
    assert len({p.question for p in first}) == 50
    for p in first:
        assert int(p.answer) >= 0
        if p.question.startswith("What is "):
            assert str(eval(p.question.removeprefix("What is ").rstrip("?"))) == p.answer


def test_arithmetic_heldout_is_disjoint_from_training() -> None:
    train = arithmetic.generate(1500, difficulty=1, seed=0)
    held = arithmetic.generate(200, difficulty=1, seed=0, split="heldout")
    assert not {p.question for p in train} & {p.question for p in held}
    assert all(arithmetic.split_of(p.question) == "heldout" for p in held)
    # Another seed's training problems never include this seed's held-out ones either.
    other = arithmetic.generate(1500, difficulty=1, seed=7)
    assert not {p.question for p in other} & {p.question for p in held}


def test_arithmetic_refuses_bad_difficulty() -> None:
    with pytest.raises(UsageError, match="--difficulty"):
        arithmetic.generate(5, difficulty=4)


def test_heldout_command_writes_bench_data(tmp_path: Path) -> None:
    out = tmp_path / "held.jsonl"
    proc = reason("train", "heldout", "-n", "5", "--seed", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    items = load_dataset(out).items
    expected = task_data("arithmetic", difficulty=1, seed=3, limit=1, heldout=5).heldout
    assert [(i.question, i.expected) for i in items] == [(p.question, p.answer) for p in expected]
    piped = reason("train", "heldout", "-n", "5", "--seed", "3")
    assert piped.stdout == out.read_text()


def test_file_data_holds_out_by_hash_and_keeps_records(tmp_path: Path) -> None:
    rows = [
        {"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(9)
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = file_data(str(data), limit=None, heldout=3)
    assert len(split.train) == 6 and len(split.heldout) == 3
    assert not {p.id for p in split.train} & {p.id for p in split.heldout}
    reversed_file = tmp_path / "reversed.jsonl"
    reversed_file.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    again = file_data(str(reversed_file), limit=None, heldout=3)
    assert {p.id for p in again.heldout} == {p.id for p in split.heldout}  # order-independent
    written = write_heldout(split.heldout, tmp_path / "held.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == [
        r for r in rows if r["id"] in {p.id for p in split.heldout}
    ]
    with pytest.raises(UsageError, match="nothing to train on"):
        file_data(str(data), limit=None, heldout=9)


# --------------------------------------------------------------------------------------------
# Rewards: the same code as inference-time GRPO, in TRL's calling convention
# --------------------------------------------------------------------------------------------


def test_reward_functions_match_score_branch_for_strings_and_messages() -> None:
    adapter = RewardAdapter([2])
    accuracy, fmt, stop = adapter.functions()
    assert [f.__name__ for f in (accuracy, fmt, stop)] == list(REWARD_WEIGHTS)
    texts = [GOOD, GOOD, "The answer is 4.", "no idea"]
    ids = [[7, 2], [7, 9], [7, 2], [7, 2]]  # EOS, cut at the limit, EOS, EOS
    chat = [[{"role": "assistant", "content": t}] for t in texts]
    for completions in (texts, chat):
        kwargs = {"completions": completions, "answer": ["5"] * 4, "completion_ids": ids}
        expected = [
            score_branch(GOOD, "5", "eos", "5"),
            score_branch(GOOD, "5", "length", "5"),
            score_branch("The answer is 4.", "4", "eos", "5"),
            score_branch("no idea", None, "eos", "5"),
        ]
        assert accuracy(**kwargs, trainer_state=None) == [r.accuracy for r in expected]
        assert fmt(**kwargs) == [r.format for r in expected]
        assert stop(**kwargs) == [r.stop for r in expected] == [1.0, 0.0, 1.0, 0.0]


def test_reward_adapter_cuts_at_stop_strings_and_reads_choices() -> None:
    adapter = RewardAdapter([2], stop=["\nQuestion:"])
    text = GOOD + "\nQuestion: what next? The answer is 9."
    (reward,) = adapter.score_batch([text], ["5"], [[1, 2, 3]])
    assert reward.accuracy == 1.0 and reward.stop == 1.0  # stopped at the string, not truncated
    (choice,) = adapter.score_batch(["It must be (B)."], ["B"], None, [True])
    assert choice.accuracy == 1.0
    assert completion_text([{"role": "assistant", "content": "a"}, {"content": "b"}]) == "ab"


# --------------------------------------------------------------------------------------------
# Settings, resume rules, the registry
# --------------------------------------------------------------------------------------------


def _fake_run(run_dir: Path, **overrides: Any) -> Path:
    run_dir.mkdir(parents=True)
    settings = TrainSettings(model="smollm2-135m", out="fake", **overrides)
    (run_dir / "run.json").write_text(json.dumps(settings.to_json()))
    return run_dir


def test_resume_keeps_settings_and_refuses_changes(tmp_path: Path) -> None:
    run_dir = _fake_run(tmp_path / "run", steps=4, group_size=4)
    plan = resolve_settings(TrainRequest(resume=run_dir, steps=9, export="f16"), "smollm2-135m")
    assert plan.resuming and plan.settings.steps == 9 and plan.settings.export == "f16"
    assert plan.settings.group_size == 4
    with pytest.raises(UsageError, match="--group-size 8 differs from 4"):
        resolve_settings(TrainRequest(resume=run_dir, group_size=8), "smollm2-135m")
    with pytest.raises(UsageError, match="already holds a training run"):
        resolve_settings(TrainRequest(out="fake", run_dir=run_dir), "smollm2-135m")
    forced = resolve_settings(TrainRequest(out="fake", run_dir=run_dir, force=True), "x")
    assert forced.clear_run_dir and run_dir.exists()  # cleared only when training starts


def test_registry_edit_keeps_the_users_file(tmp_path: Path) -> None:
    from reasoncli.models.catalog import load_catalog
    from reasoncli.train.registry import check_out_name, trained_spec, write_entry

    user = tmp_path / "models.yaml"
    user.write_text(
        "# my models\nmodels:\n  # a comment about mine\n  mine:\n    source: {path: /m.gguf}\n"
        "default: mine  # keep this\n"
    )
    source = load_catalog().get("smollm2-135m")
    gguf = tmp_path / "runs" / "new" / "new-Q8_0.gguf"
    write_entry(trained_spec("new", source, gguf, "trained here"), user)
    text = user.read_text()
    assert text.startswith("# my models\n") and "# a comment about mine" in text
    assert "default: mine  # keep this" in text
    catalog = load_catalog(user)
    entry = catalog.get("new")
    assert entry.source.path == str(gguf) and entry.mode == source.mode
    assert entry.sampling == source.sampling and catalog.get("mine")
    with pytest.raises(UsageError, match="already exists"):
        check_out_name("mine", catalog, force=False, run_dir=tmp_path)
    with pytest.raises(UsageError, match="alias"):
        check_out_name("default", catalog, force=True, run_dir=tmp_path)
    check_out_name("new", catalog, force=False, run_dir=gguf.parent)  # this run's own entry
    write_entry(trained_spec("new", source, gguf, "replaced"), user)
    assert user.read_text().count("new:") == 1 and "replaced" in user.read_text()


# --------------------------------------------------------------------------------------------
# Bad input: one line, the right exit code, before anything heavy is loaded
# --------------------------------------------------------------------------------------------


def _foreign_gguf(path: Path) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    save_gguf(writer)
    return path


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(f"models:\n  taken:\n    source: {{path: {tmp_path / 'taken.gguf'}}}\n")
    return path


def test_bad_input_exits_with_one_line(tmp_path: Path, tiny_gguf: Path, models_file: Path) -> None:
    env = {"REASON_MODELS": str(models_file)}
    tiny = ("-m", str(tiny_gguf), "--run-dir", str(tmp_path / "run"))
    foreign = _foreign_gguf(tmp_path / "qwen.gguf")
    one_error(reason("train", "grpo", "-m", str(foreign), env=env), 3, "'qwen2' cannot be trained")
    no_answers = tmp_path / "questions.jsonl"
    no_answers.write_text('{"question": "What is 2 + 2?"}\n')
    proc = reason("train", "grpo", *tiny, "--data", str(no_answers), env=env)
    one_error(proc, 4, "no answers")
    one_error(reason("train", "grpo", *tiny, "--group-size", "1", env=env), 2, "at least 2")
    for k in ("0", "4"):
        proc = reason("train", "grpo", *tiny, "--group-size", "4", "--pass-k", k, env=env)
        one_error(proc, 2, f"--pass-k {k}: use 1 up to --group-size - 1 (3)")
    one_error(reason("train", "grpo", *tiny, "--out", "taken", env=env), 2, "already exists")
    proc = reason("train", "grpo", *tiny, "--out", "smollm2-135m", env=env)
    one_error(proc, 2, "already exists")
    one_error(reason("train", "grpo", *tiny, "--export", "q4_1", env=env), 2, "--export")
    assert not (tmp_path / "run").exists()


def test_missing_train_extra_says_what_to_install(tmp_path: Path, tiny_gguf: Path) -> None:
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named torch._C')\n")
    env = {"PYTHONPATH": str(fake.parent), "REASON_MODELS": str(tmp_path / "m.yaml")}
    (tmp_path / "m.yaml").write_text("models: {}\n")
    proc = reason("train", "grpo", "-m", str(tiny_gguf), "--run-dir", str(tmp_path / "r"), env=env)
    one_error(proc, 1, 'pip install "reasoncli[train]"')


def test_first_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path: Path) -> None:
    import signal

    pytest.importorskip("transformers")
    from transformers import TrainerControl, TrainerState

    from reasoncli.train.callbacks import GracefulInterrupt, StepCallback
    from reasoncli.train.progress import SilentReporter
    from reasoncli.train.runlog import RewardLog

    messages: list[str] = []

    class Reporter(SilentReporter):
        def status(self, message: str) -> None:
            messages.append(message)

    interrupt = GracefulInterrupt(Reporter())
    callback = StepCallback(Reporter(), RewardLog(tmp_path / "log.jsonl"), interrupt)
    control, state = TrainerControl(), TrainerState()
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup or in a background job
    with interrupt.installed():
        callback.on_step_end(None, state, control)
        assert not control.should_save and not control.should_training_stop
        signal.raise_signal(signal.SIGINT)
        assert interrupt.requested and "Ctrl-C" in messages[0]
        callback.on_step_end(None, state, control)
        assert control.should_save and control.should_training_stop
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the handler it replaced, restored


def test_check_train_deps_without_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from reasoncli.train import deps

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a)
    )
    with pytest.raises(deps.TrainUnavailable, match=r"trl.*reasoncli\[train\]"):
        deps.check_train_deps()


# --------------------------------------------------------------------------------------------
# With the train extra: GGUF round trip, and GRPO end to end
# --------------------------------------------------------------------------------------------


def test_gguf_round_trip_is_exact(tmp_path: Path, tiny_gguf: Path) -> None:
    """Load (unpermute) then export (permute) F16 weights: every byte of every tensor returns,
    and so does every metadata key."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import LlamaForCausalLM

    from reasoncli.models.gguf_file import read_header
    from reasoncli.train.export import export_gguf
    from reasoncli.train.gguf_model import read_llama

    config, state = read_llama(tiny_gguf)
    model = LlamaForCausalLM(config)
    model.load_state_dict(state)
    out = export_gguf(
        model.state_dict(), config, tiny_gguf, tmp_path / "x.gguf", file_type="f16", name="x"
    )
    src, dst = read_header(tiny_gguf), read_header(out)
    assert [t.name for t in src.tensors] == [t.name for t in dst.tensors]
    for a, b in zip(src.tensors, dst.tensors, strict=True):
        assert a.ggml_type == b.ggml_type and a.shape == b.shape
        assert bytes(src.raw(a).tobytes()) == bytes(dst.raw(b).tobytes()), a.name
    assert {k.key for k in src.kv} - {k.key for k in dst.kv} == set()
    assert dst.get("general.name") == "x"
    assert dst.get("tokenizer.ggml.tokens") == src.get("tokenizer.ggml.tokens")
    with pytest.raises(ModelError):
        read_llama(_foreign_gguf(tmp_path / "qwen.gguf"))


@pytest.fixture(scope="module")
def trained(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real GRPO run on the tiny model (2 steps, F16 export), shared by the tests below."""
    needs_training()
    base = tmp_path_factory.mktemp("train")
    mine = "# mine\nmodels:\n  other:\n    source: {path: /elsewhere.gguf}\n"
    models, env = user_models(base, mine)
    run_dir = base / "runs" / "tiny-grpo"
    import reasoncli.train.trainer as trainer_module
    from reasoncli.train.callbacks import StepCallback

    trl_logs: list[dict[str, Any]] = []
    on_log = StepCallback.on_log
    pass_k_calls: list[tuple[list[float], int, int, list[float]]] = []
    pass_k = trainer_module.pass_at_k_advantages

    def pass_k_spy(rewards: list[float], group_size: int, k: int) -> list[float]:
        out = pass_k(rewards, group_size, k)
        pass_k_calls.append((list(rewards), group_size, k, out))
        return out

    def spy(self: Any, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        trl_logs.append(dict(logs or {}))
        on_log(self, args, state, control, logs=logs, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StepCallback, "on_log", spy)
        mp.setattr(trainer_module, "pass_at_k_advantages", pass_k_spy)
        proc = reason_here(
            "train", "grpo", "-m", str(tiny_gguf), "--steps", "2", *TINY_RUN, "--heldout", "4",
            "--group-size", "3", "--pass-k", "2",  # the last --group-size wins
            "--out", "tiny-grpo", "--run-dir", str(run_dir), "--export", "f16", "--json",
            env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {
        "proc": proc, "env": env, "models": models, "run_dir": run_dir, "trl_logs": trl_logs,
        "pass_k_calls": pass_k_calls,
    }  # fmt: skip


def test_pass_k_advantages_come_from_the_steps_rewards(trained: dict[str, Any]) -> None:
    """--pass-k 2 reaches the trainer: each step's advantages are the pass@2 transform of that
    step's raw rewards, which TRL logs unchanged."""
    calls = trained["pass_k_calls"]
    steps = [logs for logs in trained["trl_logs"] if "reward" in logs]
    assert len(calls) == len(steps) == 2
    for (rewards, group, k, advantages), logs in zip(calls, steps, strict=True):
        assert (group, k) == (3, 2) and len(rewards) == len(advantages) == 3
        assert sum(rewards) / len(rewards) == pytest.approx(logs["reward"], abs=1e-5)
    settings = json.loads((trained["run_dir"] / "run.json").read_text())
    assert settings["pass_k"] == 2


def test_trl_logs_the_metrics_the_reward_log_reads(trained: dict[str, Any]) -> None:
    """A renamed TRL metric would silently log zeros: check the names against TRL itself."""
    steps = [logs for logs in trained["trl_logs"] if "reward" in logs]
    assert len(steps) == 2
    for name in ("accuracy", "format", "stop"):
        assert f"rewards/{name}/mean" in steps[0]
    assert {"reward_std", "completions/mean_length", "completions/clipped_ratio"} <= set(steps[0])
    assert steps[0]["completions/mean_length"] > 0


def test_grpo_writes_log_export_and_registry(trained: dict[str, Any]) -> None:
    proc, run_dir = trained["proc"], trained["run_dir"]
    assert proc.stderr == ""  # --json and no terminal: nothing for humans
    result = json.loads(proc.stdout)
    assert result["model"] == "tiny-grpo" and result["step"] == 2 and not result["interrupted"]
    log = [json.loads(line) for line in (run_dir / "rewards.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert {"reward", "accuracy", "format", "stop", "completion_tokens", "step_s"} <= set(log[0])
    assert result["greedy_check"]["equal"] and result["greedy_check"]["prompt_tokens_match"]
    assert Path(result["gguf"]) == run_dir / "tiny-grpo-F16.gguf"
    text = trained["models"].read_text()
    assert text.startswith("# mine\n") and "other:" in text and str(run_dir) in text
    held = load_dataset(run_dir / "heldout.jsonl").items
    assert len(held) == 4 and all(arithmetic.split_of(i.question) == "heldout" for i in held)
    assert json.loads((run_dir / "summary.json").read_text())["model"] == "tiny-grpo"


def test_trained_model_answers_through_reason_ask(trained: dict[str, Any]) -> None:
    proc = reason(
        "ask", "What is 2 + 3?", "-m", "tiny-grpo", "-n", "2", "--max-tokens", "6",
        "--threads", "1", "--json", env=trained["env"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "tiny-grpo" and len(data["branches"]) == 2


def test_export_greedy_tokens_equal_transformers(trained: dict[str, Any]) -> None:
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.resolve import resolve_model
    from reasoncli.train.policy import load_checkpoint
    from reasoncli.train.prompts import prompt_ids, training_prompt
    from reasoncli.train.verify import gguf_greedy, hf_greedy

    run_dir = trained["run_dir"]
    policy = load_checkpoint(run_dir / "checkpoint-2")
    spec = resolve_model(str(run_dir / "tiny-grpo-F16.gguf"), load_catalog()).spec
    ids = prompt_ids(policy.tokenizer, training_prompt("Mia has 3 pens. How many?", spec, True))
    eos = {policy.tokenizer.eos_token_id}
    expected = hf_greedy(policy.model, ids, 12, eos)
    assert len(expected) == 12
    assert gguf_greedy(run_dir / "tiny-grpo-F16.gguf", ids, 12, eos) == expected


def test_resume_continues_the_step_count(trained: dict[str, Any], tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    shutil.copytree(trained["run_dir"], run_dir)
    proc = reason_here(
        "train", "grpo", "--resume", str(run_dir), "--steps", "3", "--force", env=trained["env"]
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "tiny-grpo\n"  # the name, for `M=$(reason train grpo ...)`
    assert "tiny-grpo: step 3/3 of GRPO" in proc.stderr and "greedy check" in proc.stderr
    result = json.loads((run_dir / "summary.json").read_text())
    assert (result["start_step"], result["step"]) == (2, 3)
    lines = (run_dir / "rewards.jsonl").read_text().splitlines()
    log = [json.loads(line)["step"] for line in lines]
    assert log == [1, 2, 3]
    assert (run_dir / "checkpoint-3").is_dir() and not (run_dir / "checkpoint-2").exists()
    again = reason_here("train", "grpo", "--resume", str(run_dir), "--force", env=trained["env"])
    assert again.returncode == 0, again.stderr  # finished: exported again, not trained further
    result = json.loads((run_dir / "summary.json").read_text())
    assert (result["start_step"], result["step"]) == (3, 3)
    assert (run_dir / "checkpoint-3").is_dir() and not (run_dir / "checkpoint-4").exists()
    proc = reason("train", "grpo", "--resume", str(run_dir), "--kl", "0.1", env=trained["env"])
    one_error(proc, 2, "--kl 0.1 differs")
