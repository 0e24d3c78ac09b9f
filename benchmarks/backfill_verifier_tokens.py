"""Add what the verifier read of each branch to a `best-of-n` results file written before bench
recorded it (`verifier_branch_tokens`, `verifier_prompt_tokens`), so `reason tune` costs a run
of k of its N branches exactly instead of sharing the run's count out by generated tokens.

    python benchmarks/backfill_verifier_tokens.py FILE [-o OUT]   # OUT defaults to FILE

The stored branch texts are scored again by the file's verifier, loaded once (its judge reads
each question's prompt afresh, as the run's did), in branch order. What a branch costs the
judge does not depend on which others share its batch, nor does the judge prompt, so the
counts are exact; the check is that the new scores equal the stored ones (printed: the largest
difference), and that the prompt and the branches together do not exceed the run's count
(which may have read the prompt twice, when its judge grew). Nothing is written unless both
hold for every question.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reasoncli.bench.datasets import load_dataset
from reasoncli.cli.runner import ModelRequest, load_session
from reasoncli.verifiers import Candidate, make_verifier

SCORE_TOLERANCE = 5e-3  # batch size changes llama.cpp's float sums (seen: up to 2e-3); a wrong
# text or question moves a score by far more


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    records = [json.loads(line) for line in args.file.read_text().splitlines() if line.strip()]
    header = next(r for r in records if r.get("type") == "run")
    name = header.get("verifier")
    if not name:
        print(f"{args.file}: no verifier in the run line", file=sys.stderr)
        return 2
    questions = {item.id: item.question for item in load_dataset(header["dataset"]).items}
    session = load_session(ModelRequest(header["model"], threads=2))
    out_lines, worst, prompts, over = [], 0.0, [], 0
    try:
        verifier = make_verifier(name, session)
        for r in records:
            if r.get("type") == "sample" and r.get("scores") and r.get("texts"):
                candidates = [Candidate(t) for t in r["texts"]]
                scores = verifier.score(questions[str(r["id"])], candidates)
                costs, prompt = list(verifier.last_costs), verifier.prompt_tokens
                for new, old in zip(scores, r["scores"], strict=True):
                    if old is not None:
                        worst = max(worst, abs(new - old))
                prompts.append(prompt)
                over += prompt + sum(costs) > int(r["verifier_tokens"])
                r = {**r, "verifier_branch_tokens": costs, "verifier_prompt_tokens": prompt}
            out_lines.append(json.dumps(r))
        verifier.close()
    finally:
        session.close()
    print(
        f"{len(prompts)} questions; largest score difference {worst:.2e}; judge prompt "
        f"{min(prompts)}-{max(prompts)} tokens; {over} question(s) over the run's count"
    )
    if worst > SCORE_TOLERANCE or over or min(prompts) <= 0:
        print("not written: the scores or the counts do not match the run", file=sys.stderr)
        return 1
    (args.out or args.file).write_text("\n".join(out_lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
