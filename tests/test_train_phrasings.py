"""The phrasing grammar, the GSM8K pick and the run record (issue #32): held-out shapes, names,
items and source problems never reach training, every instance is graded right by the tool's
own code, and run.json says what a model could have seen."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reasoncli.answers import answers_equivalent, extract_answer
from reasoncli.bench.datasets import load_dataset
from reasoncli.rewards import score_branch
from reasoncli.train import gsm8k_steps, phrasings
from reasoncli.train.data import MIXED_SHARES, task_data, write_heldout
from reasoncli.train.settings import TrainRequest, resolve_settings

ROOT = Path(__file__).resolve().parent.parent
SHARED_GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
_WORDS = {w: i for i, w in enumerate(phrasings._ONES)} | {
    t: 10 * i for i, t in enumerate(phrasings._TENS) if t
}


def _numbers(question: str) -> list[int]:
    """The numbers the statement (before the closing question) gives, digits or words
    ("forty-two"), in order; the question itself may say "one friend"."""
    statement = question.rsplit("?", 1)[0].rsplit(". ", 1)[0]
    out = []
    for token in re.findall(r"\$?\d+|[a-z]+(?:-[a-z]+)?", statement.lower()):
        if token.lstrip("$").isdigit():
            out.append(int(token.lstrip("$")))
        elif all(part in _WORDS for part in token.split("-")):
            out.append(sum(_WORDS[part] for part in token.split("-")))
    return out


def _shape_pattern(shape: phrasings.Shape) -> re.Pattern[str]:
    """A regex that matches any rendering of a shape's body (slots as wildcards)."""
    literal = re.escape(shape.body)
    for slot in ("n", "m", "i", "cs", "c", "p", "a", "b"):
        literal = literal.replace(re.escape("{" + slot + "}"), ".+?")
    return re.compile(literal, re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# The grammar
# --------------------------------------------------------------------------------------------


def test_each_operation_has_training_and_heldout_shapes() -> None:
    for op in phrasings.OPERATIONS:
        shapes = [s for s in phrasings.SHAPES if s.op == op]
        assert sum(s.heldout for s in shapes) >= 2 and sum(not s.heldout for s in shapes) >= 4
    assert len({s.id for s in phrasings.SHAPES}) == len(phrasings.SHAPES)
    assert not set(phrasings.TRAIN_NAMES) & set(phrasings.HELDOUT_NAMES)
    assert not set(phrasings.TRAIN_ITEMS) & set(phrasings.HELDOUT_ITEMS)


def test_heldout_shapes_names_and_items_never_appear_in_training() -> None:
    train = phrasings.generate(3000, seed=0)
    assert {p.shape for p in train} == set(phrasings.shape_ids("train"))
    held_patterns = [_shape_pattern(s) for s in phrasings.SHAPES if s.heldout]
    held_words = re.compile(
        r"\b("
        + "|".join(map(re.escape, phrasings.HELDOUT_NAMES + phrasings.HELDOUT_ITEMS))
        + r")\b"
    )
    for p in train:
        assert not any(pattern.search(p.question) for pattern in held_patterns), p.question
        assert not held_words.search(p.question), p.question
    held = phrasings.generate(400, seed=0, split="heldout")
    assert {p.shape for p in held} == set(phrasings.shape_ids("heldout"))
    train_words = re.compile(
        r"\b(" + "|".join(map(re.escape, phrasings.TRAIN_NAMES + phrasings.TRAIN_ITEMS)) + r")\b"
    )
    assert not any(train_words.search(p.question) for p in held)
    # and the split does not depend on the seed
    other = phrasings.generate(200, seed=7)
    assert {p.shape for p in other} <= set(phrasings.shape_ids("train"))


def test_instances_are_right_and_graded_right_by_the_tools_code() -> None:
    """The answer follows from the numbers in the text (read back independently, words
    included), and a branch that states it scores 1 with the rewards GRPO and bench use."""
    ops = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}
    ops["div"] = lambda a, b: a // b
    problems = phrasings.generate(600, seed=1) + phrasings.generate(200, split="heldout")
    shapes = {s.id: s for s in phrasings.SHAPES}
    worded = 0
    for p in problems:
        a, b = _numbers(p.question)
        shape = shapes[p.shape]
        if shape.body.index("{b}") < shape.body.index("{a}"):  # the shape states b first
            a, b = b, a
        assert str(ops[shape.op](a, b)) == p.answer, p.question
        if p.shape.startswith("div"):
            assert a % b == 0
        if p.shape.startswith("sub"):
            assert int(p.answer) > 0
        worded += bool(re.search(r"\b(two|three|four|five|six|seven|eight|nine|ten)\b", p.question))
        text = f"We work it out. The answer is {p.answer}."
        assert extract_answer(text) == p.answer
        assert score_branch(text, extract_answer(text), "eos", p.answer).accuracy == 1.0
        wrong = f"The answer is {int(p.answer) + 1}."
        assert not answers_equivalent(extract_answer(wrong) or "", p.answer)
    assert worded > 50  # numbers written as words are part of the grammar


def test_generate_is_seeded_distinct_and_refuses_too_many() -> None:
    assert phrasings.generate(50, seed=3) == phrasings.generate(50, seed=3)
    assert phrasings.generate(50, seed=3) != phrasings.generate(50, seed=4)
    questions = [p.question for p in phrasings.generate(2000)]
    assert len(set(questions)) == len(questions)
    assert [phrasings.number_words(x) for x in (0, 7, 20, 42, 90, 120)] == [
        "zero", "seven", "twenty", "forty-two", "ninety", "120",
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# GSM8K one- and two-step problems
# --------------------------------------------------------------------------------------------


def _gsm8k_line(question: str, solution: str) -> str:
    return json.dumps({"question": question, "answer": solution})


def test_pick_counts_marked_calculations() -> None:
    lines = [
        _gsm8k_line("No calculation?", "It is 4.\n#### 4"),
        _gsm8k_line("One step?", "3+4 = <<3+4=7>>7\n#### 7"),
        _gsm8k_line("Two short steps?", "2*3 = <<2*3=6>>6\n6+1 = <<6+1=7>>7\n#### 7"),
        _gsm8k_line("Long two-step? " + "x" * 200, "<<1+1=2>>2 <<2+2=4>>4\n#### 4"),
        _gsm8k_line("Three steps?", "<<1+1=2>>2 <<2+1=3>>3 <<3+1=4>>4\n#### 4"),
        _gsm8k_line("Decimal?", "<<1/2=0.5>>0.5\n#### 0.5"),
        "",
        _gsm8k_line("Thousands?", "<<1000+234=1234>>1234\n#### 1,234"),
    ]
    picked = gsm8k_steps.pick(lines)
    assert [r["id"] for r in picked] == ["gsm8k-train-2", "gsm8k-train-3", "gsm8k-train-8"]
    assert picked[0]["answer"] == "3+4 = <<3+4=7>>7\n#### 7"  # kept unchanged
    assert gsm8k_steps.steps_of(picked[1]["answer"]) == 2


def test_packaged_pick_loads_as_bench_data() -> None:
    sources = gsm8k_steps.load_sources()
    assert {s.steps for s in sources} == {1, 2} and len(sources) > 800
    path = Path(str(gsm8k_steps.resources.files("reasoncli") / "data" / gsm8k_steps.PACKAGED))
    dataset = load_dataset(path)
    assert dataset.format == "gsm8k"
    assert [i.expected for i in dataset.items] == [s.answer for s in sources]
    assert path.stat().st_size < 600_000  # the package stays small


@pytest.mark.skipif(not SHARED_GSM8K.is_file(), reason="needs ../shared/data/gsm8k")
def test_packaged_pick_is_rebuilt_from_the_train_split() -> None:
    lines = SHARED_GSM8K.read_text(encoding="utf-8").splitlines()
    packaged = [json.loads(line) for line in gsm8k_steps.load_sources.__globals__["resources"]
                .files("reasoncli").joinpath("data", gsm8k_steps.PACKAGED)
                .read_text(encoding="utf-8").splitlines()]  # fmt: skip
    assert packaged == gsm8k_steps.pick(lines)
    for record in packaged:  # the id names the source line, whose text is unchanged
        source = json.loads(lines[int(record["id"].rsplit("-", 1)[1]) - 1])
        assert source == {"question": record["question"], "answer": record["answer"]}


def test_heldout_sources_are_never_trained_on() -> None:
    for task in ("gsm8k-steps", "mixed"):
        data = task_data(task, difficulty=1, seed=0, limit=None, heldout=90)
        trained = {p.origin for p in data.train}
        held = {p.origin for p in data.heldout if (p.origin or "").startswith("gsm8k-")}
        assert held and not trained & held
        trained_text = {p.question for p in data.train}
        assert not trained_text & {p.question for p in data.heldout}
    balanced = gsm8k_steps.balanced_heldout(40)
    assert [s.steps for s in balanced] == [1, 2] * 20  # any prefix is balanced too
    assert all(gsm8k_steps.split_of(s.question) == "heldout" for s in balanced)


def test_mixed_pool_follows_its_shares_and_seed() -> None:
    data = task_data("mixed", difficulty=1, seed=0, limit=None, heldout=30)
    origins = [p.origin or "" for p in data.train]
    assert len(origins) == sum(MIXED_SHARES.values())
    assert sum(o.startswith("gsm8k-") for o in origins) == MIXED_SHARES["gsm8k-steps"]
    assert origins.count("arithmetic-2") == MIXED_SHARES["arithmetic-2"]
    assert sum(o in phrasings.shape_ids("train") for o in origins) == MIXED_SHARES["phrasings"]
    again = task_data("mixed", difficulty=1, seed=0, limit=None, heldout=30)
    assert [p.question for p in again.train] == [p.question for p in data.train]
    # the held-out third from the arithmetic task is the hash split's own problems
    hash_split = task_data("arithmetic", difficulty=1, seed=0, limit=1, heldout=10).heldout
    held = [p.question for p in data.heldout if p.origin == "arithmetic-1"]
    assert held == [p.question for p in hash_split]


# --------------------------------------------------------------------------------------------
# The run record and the held-out files
# --------------------------------------------------------------------------------------------


def test_run_json_records_what_training_could_see(tmp_path: Path, tiny_gguf: Path) -> None:
    pytest.importorskip("trl")
    from reasoncli.train.grpo import prepare_training

    run_dir = tmp_path / "run"
    request = TrainRequest(
        model=str(tiny_gguf), task="mixed", run_dir=run_dir, out="tiny-mixed", heldout=12
    )
    job = prepare_training(request)
    job._prepare_run_dir()
    record = json.loads((run_dir / "run.json").read_text())
    seen = record["provenance"]
    assert seen["train"]["shapes"] == sorted(phrasings.shape_ids("train"))
    assert set(seen["heldout"]["shapes"]) <= set(seen["never_trained"]["shapes"])
    assert seen["never_trained"]["shapes"] == phrasings.shape_ids("heldout")
    never = set(seen["never_trained"]["gsm8k_sources"])
    assert set(seen["heldout"]["gsm8k_sources"]) <= never
    assert not never & set(seen["train"]["gsm8k_sources"])
    assert len(seen["train"]["gsm8k_sources"]) == MIXED_SHARES["gsm8k-steps"]
    assert not set(seen["train"]["gsm8k_sources"]) & set(seen["heldout"]["gsm8k_sources"])
    assert seen["names"]["heldout"] == list(phrasings.HELDOUT_NAMES)
    # the record is no setting: a resume still reads the run file
    plan = resolve_settings(TrainRequest(resume=run_dir, steps=7), "smollm2-135m")
    assert plan.settings.task == "mixed" and plan.settings.steps == 7
    held = load_dataset(run_dir / "heldout.jsonl")
    assert [i.question for i in held.items] == [p.question for p in job.data.heldout]


def test_heldout_command_writes_each_kind(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reasoncli.cli.train import train_app

    runner = CliRunner()
    out = tmp_path / "shapes.jsonl"
    result = runner.invoke(
        train_app, ["heldout", "--task", "phrasings", "-n", "16", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["origin"] for r in records} == set(phrasings.shape_ids("heldout"))
    items = load_dataset(out).items
    assert [i.expected for i in items] == [r["answer"] for r in records]
    data = task_data("gsm8k-steps", difficulty=1, seed=0, limit=1, heldout=6)
    path = write_heldout(data.heldout, tmp_path / "gsm.jsonl")
    assert [json.loads(line)["origin"] for line in path.read_text().splitlines()] == [
        s.id for s in gsm8k_steps.balanced_heldout(6)
    ]


def test_train_split_for_rollouts_holds_nothing_out(tmp_path: Path) -> None:
    """`reason train heldout --split train` feeds `reason rollouts` and the verifier trainer:
    it must draw only from what GRPO trains on."""
    from typer.testing import CliRunner

    from reasoncli.cli.train import train_app

    out = tmp_path / "train.jsonl"
    args = ["heldout", "--task", "mixed", "--split", "train", "-n", "200", "-o", str(out)]
    result = CliRunner().invoke(train_app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 200 and len(load_dataset(out).items) == 200
    held = task_data("mixed", difficulty=1, seed=0, limit=1, heldout=300).heldout
    # arithmetic problems share a family name across splits; their texts are compared below
    held_origins = set(phrasings.shape_ids("heldout")) | {
        p.origin for p in held if not (p.origin or "").startswith("arithmetic-")
    }
    assert not {r.get("origin") for r in records} & held_origins
    assert not {r["question"] for r in records} & {p.question for p in held}
    bad = CliRunner().invoke(train_app, ["heldout", "--split", "test"])
    assert bad.exit_code != 0


def test_grpo_trains_on_mixed_data_and_records_it(tmp_path: Path, tiny_gguf: Path) -> None:
    """One real step of `reason train grpo --task mixed` on the tiny model: it trains on the
    mixed prompts (GSM8K text included), writes the record and the held-out kinds, exports."""
    from test_train import TINY_RUN, needs_training, reason_here, user_models

    needs_training()
    models, env = user_models(tmp_path)
    run_dir = tmp_path / "run"
    proc = reason_here(
        "train", "grpo", "-m", str(tiny_gguf), "--task", "mixed", "--steps", "1", *TINY_RUN,
        "--heldout", "6", "--out", "tiny-mixed", "--run-dir", str(run_dir), "--export", "f16",
        "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["step"] == 1 and result["data"].startswith("mixed")
    assert "tiny-mixed" in models.read_text()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["task"] == "mixed" and "provenance" in record
    held = [json.loads(line) for line in (run_dir / "heldout.jsonl").read_text().splitlines()]
    origins = [r.get("origin", "") for r in held]
    assert sum(o in phrasings.shape_ids("heldout") for o in origins) == 2
    assert sum(o.startswith("gsm8k-train-") for o in origins) == 2
    assert len(held) == 6
