"""Yes/no questions get yes/no answers: extraction and votes on real outputs of the embedded
SmolLM2 (`reason think` and `reason ask` on yes/no questions, kept in `data/yes_no_outputs.json`
with the answer each text states, read by a person), and the README's own example end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasoncli.answers import extract_answer
from reasoncli.voting import majority_vote

OUTPUTS = json.loads((Path(__file__).parent / "data" / "yes_no_outputs.json").read_text())


@pytest.mark.parametrize(
    "output", OUTPUTS, ids=[f"{o['command']}-{o['question']}-{o['branch']}" for o in OUTPUTS]
)
def test_real_outputs_give_the_answer_they_state(output: dict) -> None:
    assert extract_answer(output["text"], question=output["question"]) == output["states"]


def test_without_the_question_a_yes_no_reply_gave_a_number() -> None:
    """What issue #31 saw: the last number of "1001 is not a prime number. ..." was the vote."""
    text = next(
        o["text"] for o in OUTPUTS if o["text"].startswith("1001 is not a prime number. 1001 is a")
    )
    assert extract_answer(text) == "1001"
    assert extract_answer(text, question="Answer briefly. Is 1001 prime?") == "No"


def test_a_vote_over_real_branches_is_a_yes_no_vote() -> None:
    """Each `ask` run's branches, voted as `reason ask` votes them: the winner is a word."""
    runs: dict[str, list[str | None]] = {}
    for output in OUTPUTS:
        if output["command"] == "ask":
            answer = extract_answer(output["text"], question=output["question"])
            runs.setdefault(output["question"], []).append(answer)
    assert runs
    for question, answers in runs.items():
        vote = majority_vote(answers)
        assert vote.answer in ("Yes", "No"), (question, answers)
        assert {g.answer for g in vote.groups} <= {"Yes", "No"}, (question, answers)


@pytest.mark.embedded
def test_the_readme_example_answers_yes_or_no() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reasoncli", "think", "Is 1001 prime?", "--max-tokens", "4000"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "REASON_NO_LOG": "1"},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("Yes", "No")
