"""`reason tune`'s report as plain text and as JSON (the fit itself never prints)."""

from __future__ import annotations

from typing import Any

from reasoncli.tune.difficulty import SCORED
from reasoncli.tune.fit import TOKEN_SLACK, FrontierPoint, TuneResult

__all__ = ["render_text", "to_json"]


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _interval(p: FrontierPoint) -> str:
    return f"{_pct(p.accuracy)} ({p.low * 100:.1f}–{p.high * 100:.1f})"


def render_text(r: TuneResult, verdict: str) -> str:
    s = r.settings
    out = [
        f"tune: {r.questions} questions; fit on {r.fit}, checked on {r.held_out} held out "
        f"(question-id hash, seed {s.seed})",
        f"pilot: the first {r.pilot} branches of {r.pilot_source} (up to {r.max_tokens} tokens "
        "each), as auto draws them"
        + (f", scored by {r.pilot_verifier}" if r.pilot_verifier else ""),
        "",
        "difficulty estimate   AUC fit  AUC held-out   (hard: under half the branches after "
        "the pilot right)",
    ]
    for e in r.estimates:
        mark = "  <- used" if e.name == r.estimate else ""
        fit = "–" if e.auc_fit is None else f"{e.auc_fit:.2f}"
        held = "–" if e.auc_held_out is None else f"{e.auc_held_out:.2f}"
        cost = "  (scores the pilots; with --estimate)" if e.name in SCORED else ""
        out.append(f"  {e.name:<20} {fit:>7} {held:>13}{cost}{mark}")
    out += ["", "bins (quantiles of the estimate on the fit part; pass rate on the fit part)"]
    for b in r.bins:
        bound = "" if b.bin.up_to is None else f"<= {b.bin.up_to:.3f}"
        out.append(
            f"  {b.bin.name:<6} {bound:<9} fit {b.fit:>4}  held-out {b.held_out:>4}  "
            f"pass rate {_pct(b.pass_rate):>6}  {b.bin.means}"
        )
    out += [
        "",
        f"policy per budget (mean tok/q incl. the pilot; held-out against the best uniform "
        f"strategy within +{TOKEN_SLACK:.0%} of its tokens, paired bootstrap 95%)",
    ]
    for row in r.rows:
        if row.actions is None:
            out.append(f"  {row.budget:>5}: no choice fits ({row.why})")
            continue
        picks = ", ".join(
            f"{b.bin.name}: {a.label()}" for b, a in zip(r.bins, row.actions, strict=True)
        )
        verdict_row = "beats it" if row.passed else "does not beat it"
        out.append(f"  {row.budget:>5}: {picks}")
        out.append(
            f"         fit {_pct(row.fit_accuracy)} at {row.fit_tokens:.0f} tok/q; held-out "
            f"{row.why} -> {verdict_row}"
        )
        if row.versus_auto is not None:
            a, (mean, low, high) = row.versus_auto
            out.append(
                f"         against {a.label} (its constants) {_pct(a.accuracy)} at "
                f"{a.total:.0f} tok/q: {mean * 100:+.1f} pts ({low * 100:+.1f} to "
                f"{high * 100:+.1f}, paired 95%)"
            )
    out += [
        "",
        f"frontier on the {r.held_out} held-out questions (tokens per question; Wilson 95%)",
        f"  {'configuration':<44} {'generated':>9} {'verifier':>8} {'total':>7}  accuracy",
    ]
    for p in r.frontier:
        name = p.label + ("  [tuned]" if p.kind == "policy" else "")
        note = "  *" if p.note else ""
        out.append(
            f"  {name:<44} {p.generated:>9.0f} {p.verifier:>8.0f} {p.total:>7.0f}  "
            f"{_interval(p)}{note}"
        )
    if any(p.note for p in r.frontier):
        notes = sorted({p.note for p in r.frontier if p.note})
        out += [f"  * {n}" for n in notes]
    out += [f"note: {n}" for n in r.notes]
    out += ["", verdict]
    return "\n".join(out)


def _point(p: FrontierPoint | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "label": p.label,
        "kind": p.kind,
        "questions": p.questions,
        "correct": p.correct,
        "accuracy": p.accuracy,
        "ci": [p.low, p.high],
        "generated": p.generated,
        "verifier": p.verifier,
        "total": p.total,
        "note": p.note or None,
    }


def to_json(r: TuneResult, verdict: str, written: str | None) -> dict[str, Any]:
    return {
        "questions": r.questions,
        "fit": r.fit,
        "held_out": r.held_out,
        "seed": r.settings.seed,
        "accept": r.settings.accept,
        "pilot": {
            "source": r.pilot_source,
            "branches": r.pilot,
            "max_tokens": r.max_tokens,
            "verifier": r.pilot_verifier,
        },
        "estimates": [
            {"name": e.name, "auc_fit": e.auc_fit, "auc_held_out": e.auc_held_out}
            for e in r.estimates
        ],
        "estimate": r.estimate,
        "bins": [
            {**b.bin.model_dump(), "fit": b.fit, "held_out": b.held_out, "pass_rate": b.pass_rate}
            for b in r.bins
        ],
        "rows": [
            {
                "budget": row.budget,
                "strategies": None if row.actions is None else [a.label() for a in row.actions],
                "fit_accuracy": row.fit_accuracy,
                "fit_tokens": row.fit_tokens,
                "held_out": _point(row.held_out),
                "baseline": _point(row.baseline),
                "gain": None if row.gain is None else list(row.gain),
                "passed": row.passed,
                "why": row.why,
                "versus_auto": None
                if row.versus_auto is None
                else {"auto": _point(row.versus_auto[0]), "gain": list(row.versus_auto[1])},
            }
            for row in r.rows
        ],
        "frontier": [_point(p) for p in r.frontier],
        "policy": None if r.policy is None else r.policy.model_dump(exclude_none=True),
        "written": written,
        "verdict": verdict,
        "notes": r.notes,
    }
