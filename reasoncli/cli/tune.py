"""`reason tune`: which strategy pays at which difficulty and budget, written for `auto`.

`reason tune DATA -m MODEL` runs the candidate strategies with `reason bench`'s runner (one
resumable results file per family under --out), then fits; `reason tune --from FILE ...` fits
on results that exist. Exit 0: a policy was written (or would be, with --dry-run); exit 10: no
policy beat the best uniform strategy on the held-out questions, so none was written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reasoncli.cli.ask import ModelOpt, Quiet, model_request
from reasoncli.cli.flags import engine_flags, number_option
from reasoncli.cli.help import examples
from reasoncli.cli.io import Terminal
from reasoncli.errors import UsageError

if TYPE_CHECKING:
    from reasoncli.tune.fit import TuneSettings

NO_POLICY = 10
"""Exit status when the fit wrote no policy (it did not beat uniform strategies out of sample)."""

EXAMPLES = examples(
    "reason tune --from vote16.jsonl --from bon16.jsonl --from dvts.jsonl -m my-model",
    "reason tune --from vote16.jsonl --dry-run --budgets 128,256,512 --bins 3",
    "reason tune heldout.jsonl -m my-model --verifier prm:my-prm --out tune-runs/",
    "reason tune --from vote16.jsonl -m my-model --accept better --json",
)


def _ints(value: str, flag: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(p) for p in value.split(",") if p.strip())
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers, e.g. 128,256,512") from None
    if not numbers or min(numbers) < 1:
        raise UsageError(f"{flag} takes positive integers, e.g. 128,256,512")
    return numbers


@engine_flags
def tune(
    ctx: typer.Context,
    data: Annotated[
        str | None,
        typer.Argument(
            metavar="DATA", help="Labelled JSONL questions to run the candidates on (as bench)."
        ),
    ] = None,
    from_: Annotated[
        list[Path] | None,
        typer.Option(
            "--from", metavar="FILE", help="Fit on these bench results files instead (repeatable)."
        ),
    ] = None,
    model: ModelOpt = None,
    verifier: Annotated[
        str | None,
        typer.Option(
            "--verifier",
            metavar="orm:NAME|prm:NAME",
            help="orm:NAME or prm:NAME: add best-of-n (and dvts/beam).",
        ),
    ] = None,
    budgets: Annotated[
        str,
        typer.Option(
            "--budgets", metavar="N,N,...", help="Mean tokens per question, one policy row each."
        ),
    ] = "64,128,256,512,1024",
    bins: Annotated[
        int, number_option("--bins", metavar="N", help="Difficulty bins (quantiles).", low=1)
    ] = 4,
    pilot: Annotated[
        int, number_option("--pilot", metavar="N", help="Pilot branches auto samples.", low=1)
    ] = 4,
    estimate: Annotated[
        str | None,
        typer.Option(
            "--estimate",
            metavar="NAME",
            help="disagreement, length or disagreement+length [best AUC]; verifier-best or "
            "verifier-share: auto scores its pilots with the pilot file's verifier.",
        ),
    ] = None,
    accept: Annotated[
        str,
        typer.Option(
            "--accept",
            metavar="significant|better",
            help="significant: paired 95% gain above 0; better: gain > 0.",
        ),
    ] = "significant",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out split.")] = 0,
    branches: Annotated[
        int, number_option("--branches", "-n", help="Generating: vote/best-of-n N.", low=1)
    ] = 16,
    max_tokens: Annotated[
        int, number_option("--max-tokens", help="Generating: tokens a branch.", low=1)
    ] = 128,
    limit: Annotated[
        int | None, number_option("--limit", help="Generating: the first N questions.", low=1)
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Generating: folder of results files.")
    ] = Path("tune-runs"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fit and report; write nothing.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")] = False,
    quiet: Quiet = False,
) -> None:
    from reasoncli.tune.difficulty import ESTIMATES
    from reasoncli.tune.fit import ACCEPT, TuneSettings

    ladder = _ints(budgets, "--budgets")
    if accept not in ACCEPT:
        raise UsageError(f"--accept must be one of {', '.join(ACCEPT)}, not {accept!r}")
    if estimate is not None and estimate not in ESTIMATES:
        raise UsageError(f"--estimate must be one of {', '.join(ESTIMATES)}, not {estimate!r}")
    if bool(data) == bool(from_):
        raise UsageError("give DATA to run the candidates, or --from FILE with results (not both)")
    term = Terminal()
    files = list(from_ or [])
    if data:
        files = _generate(ctx, term, data, model, verifier, ladder, branches, max_tokens,
                          seed, limit, out, quiet)  # fmt: skip
    settings = TuneSettings(budgets=ladder, bins=bins, estimate=estimate, seed=seed, accept=accept)
    _fit(term, files, model, pilot, settings, dry_run, json_out)


def _generate(
    ctx: typer.Context,
    term: Terminal,
    data: str,
    model: str | None,
    verifier: str | None,
    ladder: tuple[int, ...],
    branches: int,
    max_tokens: int,
    seed: int,
    limit: int | None,
    out: Path,
    quiet: bool,
) -> list[Path]:
    """Run (or resume) every bench job of the ladder on one loaded model; the files it wrote."""
    from reasoncli.bench.progress import NullProgress, RichProgress
    from reasoncli.cli.runner import load_session
    from reasoncli.cli.signals import interrupt_code, run_signals
    from reasoncli.tune.generate import TuneRuns, plan_runs

    if model is None:
        raise UsageError("generating needs --model (the model the policy is for)")
    jobs = plan_runs(
        TuneRuns(data, model, out, ladder, branches, max_tokens, verifier, seed, limit)
    )
    # under run_signals, as `bench`: a Ctrl-C landing in llama.cpp's log callback is sent again
    # instead of dropped by ctypes, and SIGTERM/SIGHUP end the runs the same way
    with run_signals():
        session = load_session(model_request(ctx.params, model))
        try:
            for job in jobs:
                progress = (
                    NullProgress()
                    if quiet or not term.stderr_is_tty
                    else RichProgress(
                        term.err_console(),
                        title=job.out.name,
                        cell=lambda r: f"{r['strategy']} {r['budget']}",
                        score=lambda r: float(bool(r["correct"])),
                    )
                )
                with progress:
                    job.run(session, progress)
        except KeyboardInterrupt:
            term.stderr.write(
                f"interrupted: results kept in {out}; run the same command to go on\n"
            )
            raise typer.Exit(interrupt_code()) from None
        finally:
            session.close()
    return [job.out for job in jobs]


def _fit(
    term: Terminal,
    files: list[Path],
    model: str | None,
    pilot: int,
    settings: TuneSettings,
    dry_run: bool,
    json_out: bool,
) -> None:
    from reasoncli.tune.candidates import load_candidates
    from reasoncli.tune.fit import fit_policy
    from reasoncli.tune.render import render_text, to_json
    from reasoncli.tune.store import write_policy

    cs = load_candidates(files, pilot)
    name = model or cs.model
    result = fit_policy(cs, settings)
    written = None
    if result.policy is None:
        verdict = (
            "no policy written: no budget's policy beat the best uniform strategy on the "
            f"held-out questions (--accept {settings.accept}); auto keeps its constants"
        )
    elif dry_run:
        rows = ", ".join(str(r.budget) for r in result.policy.budgets)
        verdict = f"policy for rows {rows} tok/q not written (--dry-run)"
    else:
        if name is None:
            raise UsageError("the files come from several models: name one with --model")
        path = write_policy(name, result.policy)
        written = str(path)
        rows = ", ".join(str(r.budget) for r in result.policy.budgets)
        verdict = f"policy written to {path} (entry {name}): rows {rows} tok/q"
    text = (
        json.dumps(to_json(result, verdict, written), indent=2)
        if json_out
        else render_text(result, verdict)
    )
    term.stdout.write(text + "\n")
    term.stdout.flush()
    if result.policy is None:
        raise typer.Exit(NO_POLICY)
