"""Short GSM8K problems (one or two calculations) for `--task gsm8k-steps` and `--task mixed`.

Human-written questions are what the generated tasks cannot imitate. GSM8K's worked solutions
mark every calculation as `<<expr=value>>`, so the number of steps is the number of marks. The
package ships a small pick from the train split (`reasoncli/data/gsm8k-steps.jsonl`, MIT, see
its README): every one-step problem and the two-step ones with short questions. Whole source
problems are held out by a hash of the question, so a held-out problem is never trained on in
any wording; `python -m reasoncli.train.gsm8k_steps TRAIN.jsonl` rebuilds the file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from reasoncli.errors import InputError, UsageError
from reasoncli.train import arithmetic
from reasoncli.train.arithmetic import Split

__all__ = [
    "HELDOUT_EVERY",
    "PACKAGED",
    "Source",
    "load_sources",
    "pick",
    "split_of",
    "steps_of",
]

PACKAGED = "gsm8k-steps.jsonl"
HELDOUT_EVERY = 4
"""One source problem in HELDOUT_EVERY (by the hash of its question) is never trained on."""
MAX_TWO_STEP_CHARS = 150
"""Two-step problems are kept only when the question is this short: it keeps the package small
and the problems within reach of a 135M model's token budget."""


@dataclass(frozen=True)
class Source:
    id: str
    """`gsm8k-train-LINE`: the line of the problem in GSM8K's train.jsonl."""
    question: str
    answer: str
    """The final answer (after `####`)."""
    steps: int


def steps_of(solution: str) -> int:
    """The number of marked calculations in a GSM8K worked solution."""
    return solution.count("<<")


def split_of(question: str) -> Split:
    """The split of a source problem: the same hash as the generated problems' (one in
    HELDOUT_EVERY)."""
    return arithmetic.split_of(question, HELDOUT_EVERY)


def _final(solution: str) -> str | None:
    if "####" not in solution:
        return None
    answer = solution.rsplit("####", 1)[1].strip().replace(",", "")
    return answer if answer.lstrip("-").isdigit() else None


def pick(lines: list[str]) -> list[dict[str, str]]:
    """The records to ship, from GSM8K train.jsonl lines: one-step problems, and two-step
    problems with questions of at most MAX_TWO_STEP_CHARS, with integer answers; each keeps
    its question and solution unchanged and gains an `id` naming its source line."""
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        question, solution = record["question"], record["answer"]
        steps = steps_of(solution)
        if _final(solution) is None or steps not in (1, 2):
            continue
        if steps == 2 and len(question) > MAX_TWO_STEP_CHARS:
            continue
        out.append({"id": f"gsm8k-train-{number}", "question": question, "answer": solution})
    return out


def load_sources(path: Path | None = None) -> list[Source]:
    """The packaged pick (or `path` in the same layout), in file order."""
    target = path or Path(str(resources.files("reasoncli") / "data" / PACKAGED))
    try:
        lines = target.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{target}: cannot read: {exc.strerror or exc}") from None
    out = []
    for line in lines:
        if line.strip():
            record = json.loads(line)
            answer = _final(record["answer"])
            if answer is None:
                raise InputError(f"{target}: {record.get('id')}: no integer '#### N' answer")
            out.append(Source(record["id"], record["question"], answer, steps_of(record["answer"])))
    return out


def sources(split: Split, *, steps: tuple[int, ...] = (1, 2)) -> list[Source]:
    """The packaged sources of one split with the given step counts."""
    return [s for s in load_sources() if split_of(s.question) == split and s.steps in steps]


def balanced_heldout(n: int) -> list[Source]:
    """`n` held-out sources, one-step and two-step in turn (file order within each), so an
    evaluation set, and any prefix of it (`bench --limit`), is not dominated by the more
    common two-step problems."""
    one, two = sources("heldout", steps=(1,)), sources("heldout", steps=(2,))
    chosen: list[Source] = []
    for i in range(max(len(one), len(two))):
        chosen += one[i : i + 1] + two[i : i + 1]
    if len(chosen) < n:
        raise UsageError(f"only {len(chosen)} held-out GSM8K sources are packaged; ask for fewer")
    return chosen[:n]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m reasoncli.train.gsm8k_steps GSM8K_TRAIN.jsonl\n")
        return 2
    lines = Path(argv[0]).read_text(encoding="utf-8").splitlines()
    sys.stdout.write("".join(json.dumps(r) + "\n" for r in pick(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
