"""Small beats big? Accuracy against generated tokens per question, from `reason bench` files.

Each file is a `vote` run (with `-n 1 -t 0` it is greedy). From a vote run with N branches this
derives maj@k for k = 1, 2, 4, ..., N from its first k branches: branch i is seeded seed+i, so
the first k branches are exactly what `vote -n k` samples, and they are aggregated by the tool's
own vote over the order a k-branch run finishes them (`reasoncli.bench.picks`), so a tie goes to
the answer whose branch finished first, as in `reason vote`. Cost is the generated tokens of
those k branches. Intervals are Wilson 95% over questions.

A `best-of-n` run (`--verifier orm:NAME`) keeps every branch's score, so its file gives three
curves from the same branches: maj@k, best-of-k (the top-scored answer, `best-of-n`'s own pick)
and the score-weighted vote (`--pick weighted`). Its cost is the generated tokens; where the
file records them, the verifier's tokens are printed beside them. Any other run (beam, dvts,
auto at one or more N) gives one point per strategy and N: its own answer at the tokens it
generated. `--baseline LABEL` prints each point's gain over that vote run's maj@k on the same
questions (paired bootstrap).

    python benchmarks/small_vs_big.py LABEL=FILE ... [--baseline LABEL] [--plot out.png]

Reproduce the README's Results table (about 40 min for each vote-8 run on 2 cores):
    reason bench run benchmarks/results/arith-heldout200.jsonl -m gemma-3-270m -s vote -n 8 \
        --max-tokens 128 -o gemma-vote8.jsonl
    (and -n 1 -t 0 for greedy; the same for smollm2-135m and smollm2-arith-kl05)
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

from reasoncli.bench.metrics import wilson
from reasoncli.bench.picks import pick_is_right


def samples(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    return [r for r in rows if r.get("type") == "sample"]


def right_at(r: dict, k: int, how: str) -> float:
    """1.0 if one question's pick is right: `maj`, `best` or `weighted` over its first k
    branches (`reasoncli.bench.picks`), or `own`, the strategy's own answer (a search run:
    beam, dvts, auto)."""
    if how == "own":
        return float(bool(r["correct"]))
    return float(pick_is_right(r, k, how))


@dataclass(frozen=True)
class Cell:
    """One point of a curve: `how` picks an answer from each question's row at budget k."""

    curve: str
    k: int
    how: str
    rows: list[dict]

    def accuracy(self) -> tuple[int, float]:
        """(questions right, mean generated tokens per question)."""
        right = sum(int(right_at(r, self.k, self.how)) for r in self.rows)
        if self.how == "own":
            tokens = sum(r["tokens"] for r in self.rows)
        else:
            tokens = sum(sum(r["branch_tokens"][: self.k]) for r in self.rows)
        return right, tokens / len(self.rows)

    def verifier_tokens(self) -> float | None:
        """Mean tokens a judge read per question: 0 for a vote, the run's own count for a
        search or a whole best-of-n run, None where the file does not say (older files, or a
        best-of-k for k < N: the count is kept per run, not per branch)."""
        if self.how == "maj":
            return 0.0
        whole = self.how == "own" or all(self.k == r["branches"] for r in self.rows)
        if not whole or not all("verifier_tokens" in r for r in self.rows):
            return None
        return sum(r["verifier_tokens"] for r in self.rows) / len(self.rows)


def cells(label: str, rows: list[dict]) -> list[Cell]:
    """A vote file gives maj@k for k = 1, 2, 4, ...; a scored best-of-n file adds best-of-k and
    the weighted vote; any other file (beam, dvts, auto) one point per strategy and N."""
    if all(r["strategy"] in ("vote", "best-of-n") for r in rows):
        n_branches = min(r["branches"] for r in rows)
        ks = [k for k in (1, 2, 4, 8, 16, 32) if k <= n_branches]
        hows = {label: "maj"}
        if all("scores" in r for r in rows):
            hows = {f"{label} maj": "maj", f"{label} best-of": "best"}
            hows[f"{label} weighted"] = "weighted"
        return [Cell(name, k, how, rows) for name, how in hows.items() for k in ks]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], r["branches"]), []).append(r)
    many = len({strategy for strategy, _ in groups}) > 1
    return [
        Cell(f"{label} {strategy}" if many else label, k, "own", group)
        for (strategy, k), group in sorted(groups.items())
    ]


def table(runs: dict[str, list[dict]]) -> list[tuple[str, int, int, float, float, float]]:
    out = []
    for label, rows in runs.items():
        for cell in cells(label, rows):
            right, tokens = cell.accuracy()
            lo, hi = wilson(right, len(cell.rows))
            out.append((cell.curve, cell.k, len(cell.rows), right / len(cell.rows), lo, hi, tokens))
    return out


def bootstrap(diffs: list[float], reps: int = 4000) -> tuple[float, float, float]:
    """Mean of paired differences and its 95% bootstrap interval."""
    rng = random.Random(0)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(reps))
    return sum(diffs) / n, means[int(0.025 * reps)], means[int(0.975 * reps) - 1]


def paired_gain(rows: list[dict], k: int, how: str, reps: int = 4000) -> tuple[float, float, float]:
    """`how` minus maj@k on the same questions: mean and a 95% paired bootstrap interval."""
    return bootstrap([right_at(r, k, how) - right_at(r, k, "maj") for r in rows], reps)


def gain_over(cell: Cell, baseline: list[dict]) -> tuple[float, float, float] | None:
    """`cell` minus the baseline run's maj@k on the questions both answered (matched by id)."""
    base = {r["id"]: r for r in baseline if r["branches"] >= cell.k}
    pairs = [(r, base[r["id"]]) for r in cell.rows if r["id"] in base]
    if not pairs:
        return None
    return bootstrap([right_at(r, cell.k, cell.how) - right_at(b, cell.k, "maj") for r, b in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=results.jsonl")
    parser.add_argument("--plot", type=Path)
    parser.add_argument(
        "--baseline", help="LABEL of a vote run: every other point's paired gain over its maj@k"
    )
    parser.add_argument("--title", default="held-out arithmetic, 200 questions")
    args = parser.parse_args()
    runs = {}
    for spec in args.runs:
        label, _, path = spec.rpartition("=")  # a label may hold "=" (n=16)
        runs[label] = samples(Path(path))
    rows = table(runs)
    judge = [c.verifier_tokens() for label, rows_of in runs.items() for c in cells(label, rows_of)]
    judged = any(judge)  # a judge's reading is compute too: shown beside the generated tokens
    head = f"{'run':<34} {'k':>3} {'n':>4} {'accuracy':>9} {'95% interval':>15} {'tokens/q':>9}"
    print(head + (f" {'verifier/q':>10} {'total/q':>9}" if judged else ""))
    for (label, k, n, acc, lo, hi, tok), read in zip(rows, judge, strict=True):
        line = f"{label:<34} {k:>3} {n:>4} {acc:>9.1%} {lo:>7.1%}–{hi:<7.1%} {tok:>9.0f}"
        if judged:
            line += f" {read:>10.0f} {tok + read:>9.0f}" if read is not None else f" {'–':>10}"
        print(line)
    for label, rows_of in runs.items():
        if not all("scores" in r for r in rows_of):
            continue
        for k in (k for k in (2, 4, 8, 16, 32) if k <= min(r["branches"] for r in rows_of)):
            for how in ("best", "weighted"):
                mean, lo, hi = paired_gain(rows_of, k, how)
                print(
                    f"{label}: {how}@{k} - maj@{k} = {mean * 100:+.1f} pts "
                    f"({lo * 100:+.1f} to {hi * 100:+.1f}, paired bootstrap 95%)"
                )
    if args.baseline:
        if args.baseline not in runs:
            parser.error(f"--baseline {args.baseline!r} is not one of the LABELs")
        for label, rows_of in runs.items():
            if label == args.baseline:
                continue
            for cell in cells(label, rows_of):
                if cell.how == "maj":
                    continue
                gain = gain_over(cell, runs[args.baseline])
                if gain is not None:
                    mean, lo, hi = gain
                    print(
                        f"{cell.curve} @{cell.k} - {args.baseline} maj@{cell.k} = "
                        f"{mean * 100:+.1f} pts ({lo * 100:+.1f} to {hi * 100:+.1f}, paired)"
                    )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 5))
        labels = list(dict.fromkeys(r[0] for r in rows))
        colors = plt.get_cmap("tab20").colors  # more series than the default cycle's 10
        for i, label in enumerate(labels):
            pts = [r for r in rows if r[0] == label]
            x = [p[6] for p in pts]
            y = [p[3] for p in pts]
            err = [[p[3] - p[4] for p in pts], [p[5] - p[3] for p in pts]]
            style = {"color": colors[i % len(colors)], "marker": "o", "capsize": 3}
            ax.errorbar(x, y, yerr=err, label=label, **style)
        ax.set_xscale("log")
        ax.set_xlabel("generated tokens per question (k = 1, 2, 4, 8, ...)")
        ax.set_ylabel("accuracy (Wilson 95%)")
        ax.set_title(args.title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
