"""`reason train grpo --format think`: R1-Zero's format reward (shared by training and `--expect`),
and one real GRPO step on the tiny model whose export `reason think` then treats as a thinking
model with no configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reasoncli.models.gguf_file import read_gguf_info
from reasoncli.reasoning import THINK_TAGS
from reasoncli.rewards import FORMAT_WEIGHT, score_branch, think_format_reward
from reasoncli.train.rewards import RewardAdapter
from reasoncli.train.think_format import THINK_CHAT_TEMPLATE
from tests.test_train import TINY_RUN, needs_training, reason, reason_here, user_models


@pytest.mark.parametrize(
    ("text", "reward"),
    [
        ("2 and 3 make 5 </think>\nThe answer is 5.", 1.0),  # the template opened the thought
        ("<think>2 and 3 make 5</think> The answer is 5.", 1.0),
        ("<think>2 and 3 make 5</think> five", 0.5),  # closed, but no final answer after it
        ("<think> </think> The answer is 5.", 0.0),  # an empty thought
        ("2 and 3 make 5. The answer is 5.", 0.0),  # never closed: the answer is in the thought
        ("a </think> b </think> The answer is 5.", 0.0),  # two closes
        ("a </think> The answer is <think>5</think>.", 0.0),  # tags in the answer
    ],
)
def test_think_format_reward_checks_the_tags(text: str, reward: float) -> None:
    assert think_format_reward(text, THINK_TAGS) == reward


def test_training_and_expect_score_a_thinking_model_alike() -> None:
    text = "We add 2 and 3 and get five in total. The answer is 5."  # plain format, no tags
    plain = score_branch(text, "5", "eos", "5")
    think = score_branch(text, "5", "eos", "5", THINK_TAGS)
    assert plain.format == 1.0 and think.format == 0.0
    assert think.total == 1.0 + FORMAT_WEIGHT * think.format
    adapter = RewardAdapter([0], think_tags=THINK_TAGS)
    thought = "2 plus 3 is 5 </think> The answer is 5."
    (scored,) = adapter.score_batch([thought], ["5"], [[7, 0]])
    assert scored == score_branch(thought, "5", "eos", "5", THINK_TAGS)
    assert (scored.accuracy, scored.format) == (1.0, 1.0)


@pytest.fixture(scope="module")
def trained(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real GRPO step with --format think on the tiny model (F16 export)."""
    needs_training()
    base = tmp_path_factory.mktemp("train-think")
    models, env = user_models(base)
    run_dir = base / "runs" / "tiny-think"
    import reasoncli.train.trainer as trainer_module

    seen: dict[str, Any] = {}
    build = trainer_module.build_trainer

    def spy(policy: Any, rows: Any, adapter: Any, *args: Any, **kw: Any) -> Any:
        seen.update(template=policy.tokenizer.chat_template, tags=adapter.think_tags, rows=rows)
        return build(policy, rows, adapter, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module, "build_trainer", spy)
        proc = reason_here(
            "train", "grpo", "-m", str(tiny_gguf), "--steps", "1", *TINY_RUN, "--heldout", "2",
            "--format", "think", "--out", "tiny-think", "--run-dir", str(run_dir),
            "--export", "f16", "--json", env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {"proc": proc, "env": env, "models": models, "run_dir": run_dir, "seen": seen}


def test_think_training_prompts_with_the_r1_zero_template(trained: dict[str, Any]) -> None:
    seen = trained["seen"]
    assert seen["template"] == THINK_CHAT_TEMPLATE and seen["tags"] == THINK_TAGS
    settings = json.loads((trained["run_dir"] / "run.json").read_text())
    assert settings["format"] == "think"
    log = [json.loads(x) for x in (trained["run_dir"] / "rewards.jsonl").read_text().splitlines()]
    assert len(log) == 1 and 0.0 <= log[0]["format"] <= 1.0


def test_the_export_declares_the_tags_and_its_entry_is_plain(trained: dict[str, Any]) -> None:
    result = json.loads(trained["proc"].stdout)
    assert read_gguf_info(Path(result["gguf"])).chat_template == THINK_CHAT_TEMPLATE
    entry = trained["models"].read_text()
    assert "tiny-think:" in entry and "think_tags" not in entry and "chat_template" not in entry


def test_reason_think_treats_the_export_as_a_thinking_model(trained: dict[str, Any]) -> None:
    proc = reason(
        "think", "What is 2 + 3?", "-m", "tiny-think", "--max-tokens", "6",
        "--answer-tokens", "4", "--threads", "1", "--json", "--expect", "5",
        env={**trained["env"], "REASON_NO_LOG": "1"},
    )  # fmt: skip
    assert proc.returncode in (0, 2), proc.stderr
    data = json.loads(proc.stdout)
    branch = data["branches"][0]
    assert "</think>" in branch["text"] and branch["thinking"]  # forced close at the budget
    assert branch["reward"]["format"] == think_format_reward(branch["text"], THINK_TAGS)
