"""`reason train grpo --format think --cold-start N`: DeepSeek-R1's cold start (the model's own
right solutions rewrapped in the think format, fine-tuned on before GRPO), on the tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_run import one_error

from reasoncli.errors import UsageError
from reasoncli.reasoning import THINK_TAGS
from reasoncli.rewards import think_format_reward
from reasoncli.train.cold_start import EPOCHS, collect_examples, think_completion
from reasoncli.train.data import TrainProblem
from reasoncli.train.progress import SilentReporter
from reasoncli.train.settings import TrainRequest, resolve_settings
from tests.test_train import TINY_RUN, needs_training, reason_here, user_models


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18 - 12 = 6.\nThe answer is 6.", "18 - 12 = 6.\n</think>\nThe answer is 6."),
        # restated answers: the thought ends at the first statement that follows some reasoning
        ("18 - 12 = 6. The answer is 6.\nThe answer is 6.",
         "18 - 12 = 6.\n</think>\nThe answer is 6."),
        ("Raj has 7 - 1 = 6 left. The answer is 6 shells. The answer is 6.",
         "Raj has 7 - 1 = 6 left.\n</think>\nThe answer is 6."),
        ("The answer is 6.", None),  # no reasoning before the answer
        ("6 <think> 6 </think>. The answer is 6.", None),  # tags already in the text
    ],
)  # fmt: skip
def test_think_completion_rewraps_the_reasoning(text: str, expected: str | None) -> None:
    completion = think_completion(text, "6")
    assert completion == expected
    if completion is not None:
        assert think_format_reward(completion, THINK_TAGS) == 1.0


def _problem(i: int, answer: str) -> TrainProblem:
    return TrainProblem(f"p{i}", f"What is {answer} + 0?", answer)


def test_collect_keeps_one_right_stopped_solution_per_problem() -> None:
    samples = {
        "p0": [
            ("We add them up: 5. The answer is 5.", "5", "stop"),  # wrong
            ("We add 4 and 0: 4. The answer is 4.", "4", "length"),  # cut, not stopped
            ("We add 4 and 0 to get 4. The answer is 4.", "4", "stop"),  # kept
            ("Adding 4 and 0 gives 4. The answer is 4.", "4", "stop"),  # one per problem
        ],
        "p1": [("It is 7.", "7", "stop"), ("The answer is 7.", "7", "stop")],  # no reasoning
        "p2": [("Adding 2 and 0 gives 2. The answer is 2.", "2", "stop")],
        "p3": [("Adding 3 and 0 gives 3. The answer is 3.", "3", "stop")],
    }
    problems = [_problem(0, "4"), _problem(1, "7"), _problem(2, "2"), _problem(3, "3")]
    examples, tried = collect_examples(
        problems, lambda p: samples[p.id], wanted=2, reporter=SilentReporter()
    )
    assert tried == 3 and [e.id for e in examples] == ["p0", "p2"]
    assert examples[0].source == "We add 4 and 0 to get 4. The answer is 4."
    assert examples[0].completion == "We add 4 and 0 to get 4.\n</think>\nThe answer is 4."


def test_cold_start_needs_the_think_format() -> None:
    with pytest.raises(UsageError, match="--format think"):
        resolve_settings(TrainRequest(model="x.gguf", cold_start=8), "default")
    plan = resolve_settings(TrainRequest(model="x.gguf", cold_start=8, format="think"), "d")
    assert plan.settings.cold_start == 8
    assert plan.settings.export == "f16"  # Q8_0 would round the cold start away
    assert resolve_settings(TrainRequest(model="x.gguf"), "d").settings.export == "q8_0"
    assert resolve_settings(TrainRequest(model="x.gguf"), "d").settings.cold_start == 0


def _canned(problem: TrainProblem) -> list[tuple[str, str | None, str]]:
    """What a model that can do the task would sample: one wrong, one right solution."""
    return [
        ("I guess. The answer is 999.", "999", "stop"),
        (f"Working it out step by step gives {problem.answer}. The answer is {problem.answer}.",
         problem.answer, "stop"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cold(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A cold start of 3 examples, then one GRPO step with a KL term, on the tiny model; the
    tiny model solves nothing, so the sampler is replaced by one that solves every problem."""
    needs_training()
    base = tmp_path_factory.mktemp("cold-start")
    models, env = user_models(base)
    run_dir = base / "runs" / "tiny-cold"
    import reasoncli.train.cold_start as cold_start

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cold_start, "llama_sampler", lambda *a: _canned)
        proc = reason_here(
            "train", "grpo", "-m", str(tiny_gguf), "--steps", "1", *TINY_RUN, "--heldout", "2",
            "--limit", "6", "--format", "think", "--cold-start", "3", "--kl", "0.05",
            "--out", "tiny-cold", "--run-dir", str(run_dir), "--export", "f16", "--json",
            env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {"proc": proc, "env": env, "models": models, "run_dir": run_dir, "gguf": tiny_gguf}


def test_cold_start_fine_tunes_on_rewrapped_solutions(cold: dict[str, Any]) -> None:
    run_dir = cold["run_dir"]
    examples = [json.loads(x) for x in (run_dir / "cold-start.jsonl").read_text().splitlines()]
    assert len(examples) == 3
    for e in examples:
        assert e["completion"].endswith(f"</think>\nThe answer is {e['answer']}.")
        assert e["source"].startswith("Working it out")
    log = [json.loads(x) for x in (run_dir / "cold-start-log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, EPOCHS + 1))  # 3 examples: a batch an epoch
    result = json.loads(cold["proc"].stdout)
    assert result["cold_start"]["examples"] == 3 and result["cold_start"]["problems_tried"] == 3
    assert result["cold_start"]["fine_tune_steps"] == EPOCHS and result["step"] == 1
    assert "cold start on 3 of its own solutions" in cold["models"].read_text()


def test_the_kl_reference_is_the_cold_started_model(cold: dict[str, Any]) -> None:
    """R1's RL stage holds the policy to its SFT model: the reference saved for the KL term is
    the fine-tuned model, which the fine-tuning moved away from the GGUF."""
    import torch
    from safetensors.torch import load_file

    from reasoncli.train.gguf_model import read_llama

    run_dir = cold["run_dir"]
    reference = load_file(str(run_dir / "reference" / "model.safetensors"))
    tuned = load_file(str(run_dir / "cold-start" / "model.safetensors"))
    _, original = read_llama(cold["gguf"])
    name = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(reference[name], tuned[name])
    assert not torch.equal(tuned[name], original[name].to(tuned[name].dtype))


def test_a_resumed_run_reuses_the_cold_start(cold: dict[str, Any], tmp_path: Path) -> None:
    """Stopped before the first GRPO checkpoint: the resumed run loads cold-start/ and neither
    samples nor fine-tunes again."""
    import reasoncli.train.cold_start as cold_start

    run_dir = tmp_path / "resumed"
    shutil.copytree(cold["run_dir"], run_dir)
    for checkpoint in run_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    (run_dir / "rewards.jsonl").unlink()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cold start ran again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cold_start, "llama_sampler", refuse)
        mp.setattr(cold_start, "fine_tune", refuse)
        proc = reason_here(
            "train", "grpo", "--resume", str(run_dir), "--force", "--json", env=cold["env"]
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["step"] == 1 and result["cold_start"]["examples"] == 3


def test_a_model_that_solves_nothing_is_refused(tiny_gguf: Path, tmp_path: Path) -> None:
    """The real sampler (llama.cpp, the model's own template) on the random tiny model: no
    right solution, so nothing to start from, said in one line."""
    pytest.importorskip("trl")
    _, env = user_models(tmp_path)
    proc = reason_here(
        "train", "grpo", "-m", str(tiny_gguf), *TINY_RUN, "--limit", "2", "--heldout", "1",
        "--format", "think", "--cold-start", "4", "--run-dir", str(tmp_path / "run"),
        env=env,
    )  # fmt: skip
    one_error(proc, 3, "solved none of the 2 training problems")
