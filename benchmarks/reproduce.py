"""Rebuild what the README's result tables stand on, and check the tables against the files.

    python benchmarks/reproduce.py tables                 # seconds: every table from the
                                                          # committed JSONL, compared byte for byte
    python benchmarks/reproduce.py all --work repro/      # hours: held-out sets, the trained
                                                          # models, every bench run, then the tables
    python benchmarks/reproduce.py list                   # the stages and their time on 2 cores

`tables` regenerates each committed table (`benchmarks/results/*.txt`) with the command that made
it, from the committed result files, and exits 1 if any differs (the diff is printed).

`all` runs every stage in order into --work and is resumable: a stage that finished is stamped
(`WORK/.done/NAME`) and skipped; one that was interrupted goes on from what it wrote (`train grpo
--resume`, `bench --resume`, `rollouts --resume`; `train verifier` resumes from its run
directory by itself). Trained models are registered in the models.yaml that `reason` uses
(`REASON_MODELS` to keep them apart). The held-out sets must come out byte for byte; tables made
from new runs are written to WORK/tables and compared with the committed ones for information
only, since a model retrained on another machine or build differs in float rounding (see the
README on the two draws of `smollm2-arith-t10`). Times are those the README reports for each
run on the 2-core machine, not re-measured end to end; each stage's own time is logged to
WORK/times.jsonl.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
H1, H2 = "arith-heldout200.jsonl", "arith2-heldout200.jsonl"


@dataclass(frozen=True)
class Stage:
    """One step of the rebuild: `argv` runs `reason` (or, with `python`, a Python snippet);
    `resume` replaces it once `output` exists; the stage is done when it exits 0."""

    name: str
    minutes: str  # on 2 cores, as the README reports the run
    argv: tuple[str, ...]
    output: str = ""  # relative to WORK
    resume: tuple[str, ...] = ()
    python: bool = False
    expect: str = ""  # a committed file the output must equal byte for byte


@dataclass(frozen=True)
class Table:
    """A committed table and the command that printed it (`{R}`: the results folder)."""

    file: str
    argv: tuple[str, ...]
    script: str = ""  # a benchmarks/ script; empty: `reason`
    columns: int | None = None  # terminal width the Rich tables were drawn at
    inputs: tuple[str, ...] = field(default=())


def _train(name: str, minutes: str, steps: int, *extra: str) -> Stage:
    run = f"runs/{name}"
    common = ("--model", "smollm2-135m", "--task", "arithmetic", "--prompts-per-step", "1")
    return Stage(
        name,
        minutes,
        ("train", "grpo", *common, "--steps", str(steps), "--max-tokens", "48", *extra,
         "--out", name, "--run-dir", run),
        output=run,
        resume=("train", "grpo", "--resume", run, "--steps", str(steps)),
    )  # fmt: skip


def _bench(out: str, minutes: str, data: str, model: str, *args: str) -> Stage:
    path = f"results/{out}"
    return Stage(
        out.removesuffix(".jsonl"),
        minutes,
        ("bench", "run", data, "-m", model, *args, "--max-tokens", "128", "-o", path, "-q"),
        output=path,
        resume=("bench", "run", "--resume", path, "-q"),
    )


def _rollouts(name: str, minutes: str, data: str, out: str) -> Stage:
    """Eight rollouts a question of smollm2-arith-t10 on `data`, the verifiers' training data."""
    common = ("-m", "smollm2-arith-t10", "-n", "8", "--max-tokens", "128")
    return Stage(
        name,
        minutes,
        ("rollouts", data, *common, "-o", out, "-q"),
        output=out,
        resume=("rollouts", data, *common, "--resume", out, "-q"),
    )


GENERATE = """import json, sys
from reasoncli.train.arithmetic import generate
n, difficulty, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(out, "w") as f:
    for i, p in enumerate(generate(n, difficulty=difficulty)):
        f.write(json.dumps({"id": f"t{i}", "question": p.question, "answer": p.answer}) + "\\n")
"""

ORM = "smollm2-arith-orm2"
PRM = "smollm2-arith2-prm"
V1 = ("--verifier", f"orm:{ORM}")
V2 = ("--verifier", f"prm:{PRM}")
D1, D2 = f"results/{H1}", f"results/{H2}"
T10 = "smollm2-arith-t10"
GREEDY = ("-n", "1", "-t", "0")
BON16 = ("-s", "best-of-n", "-n", "16")

STAGES: tuple[Stage, ...] = (
    Stage("heldout-1", "< 1", ("train", "heldout", "--task", "arithmetic", "-n", "200", "-o", D1),
          output=D1, expect=H1),
    Stage("heldout-2", "< 1", ("train", "heldout", "-n", "200", "--difficulty", "2", "-o", D2),
          output=D2, expect=H2),
    _train("smollm2-arith", "99", 300),
    _train("smollm2-arith-kl05", "66", 100, "--kl", "0.05", "--temperature", "1.0"),
    _train("smollm2-arith-t10", "27", 100, "--temperature", "1.0"),
    _train("smollm2-arith-pk4", "18", 100, "--temperature", "1.0", "--pass-k", "4"),
    Stage("train832", "< 1", ("-c", GENERATE, "832", "1", "train832.jsonl"),
          output="train832.jsonl", python=True),
    _rollouts("rollouts-832", "15", "train832.jsonl", "rollouts832.jsonl"),
    Stage("orm2", "35",
          ("train", "verifier", "rollouts832.jsonl", "--kind", "orm", "-m", "smollm2-arith-t10",
           "--out", ORM, "--run-dir", f"runs/{ORM}", "--steps", "450", "--heldout", "32")),
    Stage("train2-240", "< 1", ("-c", GENERATE, "240", "2", "train2.jsonl"),
          output="train2.jsonl", python=True),
    _rollouts("rollouts-2", "6-10", "train2.jsonl", "rollouts2.jsonl"),
    Stage("prm", "37",
          ("train", "verifier", "rollouts2.jsonl", "--kind", "prm", "-m", "smollm2-arith-t10",
           "--policy", "smollm2-arith-t10", "--out", PRM, "--run-dir", f"runs/{PRM}",
           "--steps", "300", "--heldout", "24", "--mc-max-tokens", "48")),
    *(
        _bench(f"{prefix}-{tag}.jsonl", minutes, data, model, "-s", "vote", *n)
        for prefix, data, tag, model, minutes, n in (
            ("arith-heldout200", D1, "gemma-greedy", "gemma-3-270m", "1-5", GREEDY),
            ("arith-heldout200", D1, "gemma-vote8", "gemma-3-270m", "4-40", ("-n", "8")),
            ("arith-heldout200", D1, "base-vote8", "smollm2-135m", "4-40", ("-n", "8")),
            ("arith-heldout200", D1, "grpo300-vote8", "smollm2-arith", "4-40", ("-n", "8")),
            ("arith-heldout200", D1, "kl05-greedy", "smollm2-arith-kl05", "1-5", GREEDY),
            ("arith-heldout200", D1, "kl05-vote8", "smollm2-arith-kl05", "40", ("-n", "8")),
            ("arith-heldout200", D1, "t10-greedy", "smollm2-arith-t10", "1-5", GREEDY),
            ("arith-heldout200", D1, "t10-vote8", "smollm2-arith-t10", "4", ("-n", "8")),
            ("arith-heldout200", D1, "t10-vote16", "smollm2-arith-t10", "8.5", ("-n", "16")),
            ("arith-heldout200", D1, "pk4-greedy", "smollm2-arith-pk4", "1-5", GREEDY),
            ("arith-heldout200", D1, "pk4-vote8", "smollm2-arith-pk4", "4", ("-n", "8")),
            ("arith2-heldout200", D2, "gemma-greedy", "gemma-3-270m", "1-5", GREEDY),
            ("arith2-heldout200", D2, "gemma-vote8", "gemma-3-270m", "9", ("-n", "8")),
            ("arith2-heldout200", D2, "t10-greedy", "smollm2-arith-t10", "1-5", GREEDY),
            ("arith2-heldout200", D2, "t10-vote16", "smollm2-arith-t10", "6", ("-n", "16")),
        )
    ),
    _bench("arith-heldout200-t10-auto8.jsonl", "8.5", D1, T10, "-s", "auto", "-n", "8"),
    _bench("arith-heldout200-t10-bon16-orm2-f16.jsonl", "10", D1, T10, *BON16, *V1),
    _bench("arith2-heldout200-t10-bon16-prm.jsonl", "16", D2, T10, *BON16, *V2),
    _bench("arith2-heldout200-t10-beam-prm.jsonl", "18", D2, T10, "-s", "beam", "-n", "8,16", *V2),
    _bench("arith2-heldout200-t10-dvts-prm.jsonl", "16", D2, T10, "-s", "dvts", "-n", "8,16", *V2),
)  # fmt: skip


def _vote_files(*pairs: str) -> tuple[str, ...]:
    return tuple(
        f"{label}={{R}}/{name}" for label, name in zip(pairs[::2], pairs[1::2], strict=True)
    )


TUNE2 = ("bon16-prm", "vote16", "dvts-prm", "beam-prm", "greedy")  # the scored file pilots
LADDER = ("--budgets", "128,192,256,384,512,768,1024", "--dry-run")

TABLES: tuple[Table, ...] = (
    Table(
        "small-vs-big-arith.txt",
        (*_vote_files(
            "gemma-3-270m greedy", "arith-heldout200-gemma-greedy.jsonl",
            "gemma-3-270m vote", "arith-heldout200-gemma-vote8.jsonl",
            "SmolLM2-135M base vote", "arith-heldout200-base-vote8.jsonl",
            "135M GRPO kl05 greedy", "arith-heldout200-kl05-greedy.jsonl",
            "135M GRPO kl05 vote", "arith-heldout200-kl05-vote8.jsonl",
            "135M GRPO t10 greedy", "arith-heldout200-t10-greedy.jsonl",
            "135M GRPO t10 vote", "arith-heldout200-t10-vote8.jsonl",
            "135M GRPO pk4 greedy", "arith-heldout200-pk4-greedy.jsonl",
            "135M GRPO pk4 vote", "arith-heldout200-pk4-vote8.jsonl",
            "135M t10 + ORM 2 n=16", "arith-heldout200-t10-bon16-orm2-f16.jsonl",
        ), "--plot", "benchmarks/results/small-vs-big-arith.png"),
        script="small_vs_big.py",
    ),
    Table(
        "small-vs-big-arith2.txt",
        (*_vote_files(
            "gemma-3-270m greedy", "arith2-heldout200-gemma-greedy.jsonl",
            "gemma-3-270m vote", "arith2-heldout200-gemma-vote8.jsonl",
            "135M t10 greedy", "arith2-heldout200-t10-greedy.jsonl",
            "135M t10 vote", "arith2-heldout200-t10-vote16.jsonl",
            "135M t10 + PRM n=16", "arith2-heldout200-t10-bon16-prm.jsonl",
            "135M t10 PRM beam", "arith2-heldout200-t10-beam-prm.jsonl",
            "135M t10 PRM dvts", "arith2-heldout200-t10-dvts-prm.jsonl",
        ), "--baseline", "135M t10 vote", "--plot", "benchmarks/results/small-vs-big-arith2.png"),
        script="small_vs_big.py",
    ),
    Table(
        "verifier-auc-t10-arith.txt",
        tuple(f"{{R}}/arith-heldout200-t10-bon16-{v}.jsonl" for v in
              ("orm", "orm1-f16", "orm2", "orm2-f16")),
        script="verifier_auc.py",
    ),
    Table("verifier-auc-t10-arith2-prm.txt", ("{R}/arith2-heldout200-t10-bon16-prm.jsonl",),
          script="verifier_auc.py"),
    Table(
        "grpo-pk4-vs-t10-train.txt",
        ("t10={R}/grpo100-t10-smollm2-arith-rewards.jsonl",
         "pass@4={R}/grpo100-pk4-smollm2-arith-rewards.jsonl", "--window", "20"),
        script="reward_logs.py",
    ),
    Table("arith-heldout200-base-vs-grpo300.txt",
          ("bench", "compare", "{R}/arith-heldout200-base-vote8.jsonl",
           "{R}/arith-heldout200-grpo300-vote8.jsonl",
           "--plot", "results/arith-heldout200-base-vs-grpo300.png"), columns=95),
    Table("arith-heldout200-base-grpo300-kl05.txt",
          ("bench", "compare", *(f"{{R}}/arith-heldout200-{m}-vote8.jsonl"
                                 for m in ("base", "grpo300", "kl05"))), columns=120),
    Table("arith-heldout200-base-grpo300-kl05-t10.txt",
          ("bench", "compare", *(f"{{R}}/arith-heldout200-{m}-vote8.jsonl"
                                 for m in ("base", "grpo300", "kl05", "t10"))), columns=130),
    Table("arith-heldout200-t10-pk4-kl05.txt",
          ("bench", "compare", *(f"{{R}}/arith-heldout200-{m}-vote8.jsonl"
                                 for m in ("t10", "pk4", "kl05"))), columns=160),
    Table("tune-arith2-t10.txt",
          ("tune", *(f"--from={{R}}/arith2-heldout200-t10-{n}.jsonl" for n in TUNE2), *LADDER)),
    Table("tune-arith-t10.txt",
          ("tune", *(f"--from={{R}}/arith-heldout200-t10-{n}.jsonl"
                     for n in ("bon16-orm2-f16", "greedy", "auto8")), *LADDER)),
)  # fmt: skip


def _reason(*argv: str) -> list[str]:
    return [sys.executable, "-m", "reasoncli", *argv]


def regenerate(table: Table, results: Path) -> tuple[bytes, str]:
    """The table's command run in a scratch folder (plots land there); stdout and stderr."""
    argv = [a.replace("{R}", str(results)) for a in table.argv]
    cmd = (
        [sys.executable, str(ROOT / "benchmarks" / table.script), *argv]
        if table.script
        else _reason(*argv)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if table.columns:
        env["COLUMNS"] = str(table.columns)
    with tempfile.TemporaryDirectory() as scratch:
        for sub in ("results", "benchmarks/results"):
            Path(scratch, sub).mkdir(parents=True)
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, check=False)
    return proc.stdout, proc.stderr.decode(errors="replace")


def check_tables(results: Path, out: Path | None) -> int:
    """Regenerate every table from `results`; 0 when all equal the committed ones."""
    differ = 0
    for table in TABLES:
        missing = [a for a in table.argv if "{R}" in a and not Path(_path(a, results)).exists()]
        if missing:
            print(f"skip   {table.file}: {len(missing)} input(s) missing in {results}")
            continue
        started = time.perf_counter()
        got, err = regenerate(table, results)
        took = time.perf_counter() - started
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / table.file).write_bytes(got)
        want = (RESULTS / table.file).read_bytes()
        if got == want:
            print(f"same   {table.file} ({took:.1f} s)")
            continue
        differ += 1
        print(f"DIFFER {table.file} ({took:.1f} s){': ' + err.strip()[-300:] if err else ''}")
        diff = difflib.unified_diff(
            want.decode(errors="replace").splitlines(),
            got.decode(errors="replace").splitlines(),
            f"committed/{table.file}",
            f"regenerated/{table.file}",
            lineterm="",
            n=0,
        )
        print("\n".join(list(diff)[:40]))
    return differ


def _path(arg: str, results: Path) -> str:
    """The file an argument names (`LABEL=PATH`, `--from=PATH` or a bare path)."""
    value = arg.replace("{R}", str(results))
    return value.rpartition("=")[2]  # labels may hold "=" (n=16), paths do not


def run_stages(work: Path) -> int:
    """Every stage in order, skipping those stamped done; stops at the first failure."""
    (work / "results").mkdir(parents=True, exist_ok=True)
    done = work / ".done"
    done.mkdir(exist_ok=True)
    for stage in STAGES:
        stamp = done / stage.name
        if stamp.exists():
            print(f"done   {stage.name}")
            continue
        argv = stage.resume if stage.resume and (work / stage.output).exists() else stage.argv
        cmd = [sys.executable, *argv] if stage.python else _reason(*argv)
        print(f"run    {stage.name} (about {stage.minutes} min on 2 cores): {' '.join(argv)[:120]}")
        started = time.perf_counter()
        rc = subprocess.run(cmd, cwd=work, check=False).returncode
        took = time.perf_counter() - started
        with (work / "times.jsonl").open("a") as log:
            log.write(json.dumps({"stage": stage.name, "rc": rc, "s": round(took, 1)}) + "\n")
        if rc != 0:
            print(f"FAILED {stage.name} (exit {rc}); run the same command again to go on")
            return rc
        if (
            stage.expect
            and (work / stage.output).read_bytes() != (RESULTS / stage.expect).read_bytes()
        ):
            print(f"DIFFER {stage.output} is not the committed {stage.expect}")
            return 1
        stamp.touch()
    return check_tables(work / "results", work / "tables")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("tables", "all", "list"))
    parser.add_argument("--work", type=Path, default=Path("repro"), help="folder for `all`")
    args = parser.parse_args()
    if args.what == "list":
        for s in STAGES:
            print(
                f"{s.name:<44} {s.minutes:>6} min   reason {' '.join(s.argv)[:90]}"
                if not s.python
                else f"{s.name:<44} {s.minutes:>6} min   (python)"
            )
        for t in TABLES:
            print(f"table  {t.file}")
        return
    if args.what == "tables":
        sys.exit(1 if check_tables(RESULTS, None) else 0)
    sys.exit(1 if run_stages(args.work.resolve()) else 0)


if __name__ == "__main__":
    main()
