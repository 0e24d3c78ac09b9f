"""`reason train grpo --format think` with the R1 curves the reward log lacks (issue #28 §1).

Runs the CLI in this process and records, for every batch of completions the rewards score, the
mean thinking length in tokens (text before `</think>`: the template opens the thought, so a
completion that never closes it is all thinking) and the share that closed it. The reward log
(RUN_DIR/rewards.jsonl) has reward, format, accuracy and completion length per step; this adds
RUN_DIR/thinking.jsonl, one row per step, and prints a table of both.

    nice -n 15 python benchmarks/think_train.py -- --steps 30 --format think --out NAME ...

Arguments after `--` go to `reason train grpo` unchanged (give --run-dir or the default
runs/OUT is used).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from reasoncli.reasoning import THINK_TAGS


def _run_dir(args: list[str]) -> Path:
    for flag in ("--run-dir", "--resume"):
        if flag in args:
            return Path(args[args.index(flag) + 1])
    return Path("runs") / args[args.index("--out") + 1]


def main(argv: list[str]) -> int:
    args = argv[argv.index("--") + 1 :] if "--" in argv else argv
    run_dir = _run_dir(args)
    import reasoncli.train.rewards as rewards

    # A resumed run goes on from its checkpoint: keep the rows logged up to it and number on.
    kept = run_dir / "thinking.jsonl"
    rows: list[dict[str, Any]] = (
        [json.loads(x) for x in kept.read_text().splitlines()] if kept.exists() else []
    )
    last: list[Any] = []  # TRL scores each batch once per reward function: count it once
    counter: dict[str, Any] = {}

    original = rewards.RewardAdapter.score_batch

    def score_batch(self: Any, completions: Any, answer: Any, completion_ids: Any = None,
                    multiple_choice: Any = None) -> Any:  # fmt: skip
        scored = original(self, completions, answer, completion_ids, multiple_choice)
        texts = [rewards.completion_text(c) for c in completions]
        if texts != last:
            last[:] = texts
            tokenizer = counter.get("tokenizer")
            lengths, closed = [], 0
            for text, ids in zip(texts, completion_ids or [None] * len(texts), strict=True):
                trace = text.split(THINK_TAGS[1], 1)[0]
                closed += THINK_TAGS[1] in text
                if tokenizer is not None:
                    lengths.append(len(tokenizer(trace, add_special_tokens=False)["input_ids"]))
                else:
                    lengths.append(len(ids or []) if THINK_TAGS[1] not in text else len(trace) / 4)
            rows.append(
                {
                    "step": len(rows) + 1,
                    "thinking_tokens": sum(lengths) / len(lengths),
                    "closed": closed / len(texts),
                    "format_ok": sum(r.format == 1.0 for r in scored) / len(scored),
                    "accuracy": sum(r.accuracy for r in scored) / len(scored),
                }
            )
            run_dir.mkdir(parents=True, exist_ok=True)
            with (run_dir / "thinking.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(rows[-1]) + "\n")
        return scored

    rewards.RewardAdapter.score_batch = score_batch  # type: ignore[method-assign]
    import reasoncli.train.trainer as trainer

    build = trainer.build_trainer

    def build_trainer(policy: Any, *a: Any, **kw: Any) -> Any:
        counter["tokenizer"] = policy.tokenizer
        return build(policy, *a, **kw)

    trainer.build_trainer = build_trainer  # type: ignore[assignment]
    from reasoncli.cli.app import main as reason

    try:
        reason(["train", "grpo", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    log = run_dir / "rewards.jsonl"
    steps = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    print("step  reward  format(mean)  format=1  accuracy  completion_tok  thinking_tok  closed")
    for r, t in zip(steps, rows, strict=False):
        print(
            f"{r['step']:>4}  {r['reward']:6.3f}  {r['format']:12.3f}  {t['format_ok']:8.2f}  "
            f"{r['accuracy']:8.3f}  {r['completion_tokens']:14.1f}  {t['thinking_tokens']:12.1f}"
            f"  {t['closed']:6.2f}"
        )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
