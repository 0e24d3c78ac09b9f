"""Issue #27's figure: every configuration's accuracy against its tokens per question, serial
against parallel at equal compute, and `auto` (with its constants, or a tuned policy) against
the best uniform strategy and the bigger model.

    python benchmarks/frontier.py DIR [--tuned FILE] [--plot out.png] [--partial]

DIR is what benchmarks/frontier.sh writes: one folder of `reason bench` results files per model
(`kl05/`: vote.jsonl, greedy.jsonl, think.jsonl, revise.jsonl, think-wait*.jsonl, auto.jsonl,
weighted-vote.jsonl; `gemma/`: the bigger model's greedy.jsonl and vote.jsonl). Every
configuration is read as `reason tune` reads it (`reasoncli.tune.candidates.load_candidates`):
vote n=k for every k from the first k branches of the vote file with the tool's tie rule, each
`think` budget, revise, forcing, DeepConf, auto, each at its own answer and cost (generated
tokens, and the tokens a verifier read). Each file is loaded beside its model's vote file on its
own, because tune keys a configuration by its strategy and budget and would drop a forced
`think` (`--min-tokens`) as a repeat of the unforced one at the same budget. The bigger model's
files are read beside its own vote file, or the model's while its vote is still running (that
file only stands in for auto's pilot, which no figure here uses).

Figures are on the questions every file answered. A file still being written (fewer samples
than its run line's questions x strategies x budgets, or no run line yet) is left out and named
in a note; --partial reads it anyway, on the questions it has. Figures are on all questions, on
tune's held-out half (`reasoncli.tune.fit.held_out_mask`, seed 0), and per difficulty from the
id prefix (`d1-`, `d2-`, `d3-`). Intervals: Wilson 95% for an accuracy, paired bootstrap 95% over
questions for a difference (`reasoncli.bench.metrics`). A `--tuned` run (a bench file of `auto`
following a tuned policy) is reported on the held-out half only, since the policy was fit on
the other half. The output depends only on the files, so the table regenerates byte for byte.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

from reasoncli.bench.metrics import bootstrap_mean, wilson
from reasoncli.bench.report import unique_samples
from reasoncli.bench.store import read_records
from reasoncli.errors import ReasonError
from reasoncli.strategies.base import REGISTRY, load_builtin_strategies
from reasoncli.tune.candidates import Candidate, CandidateSet, Outcome, load_candidates
from reasoncli.tune.fit import held_out_mask

PILOT = 4  # `reason tune`'s default; load_candidates needs one, and it does not change `alone`
SEED = 0  # tune's split and every bootstrap
KINDS = ("serial", "parallel", "search", "adaptive", "bigger model")
SAMPLED = ("vote", "best-of-n")  # load_candidates' pilot: branch i seeded seed + i
DIFFICULTY = re.compile(r"^(d\d+)-")


@dataclass(frozen=True)
class Config:
    """One configuration: its label, kind, and outcome on the questions of `mask` (a boolean
    array over `Frontier.ids`; None: all of them)."""

    label: str
    kind: str
    source: str
    candidate: Candidate
    outcome: Outcome
    min_tokens: int | None = None
    mask: np.ndarray | None = None

    @property
    def vote(self) -> bool:
        """A sampled `vote -n k` (the model's: the parallel series serial runs are paired
        against; the bigger model's: a series of its own)."""
        a = self.candidate.action
        return a.strategy == "vote" and a.temperature is None

    @property
    def think_ladder(self) -> bool:
        """Unforced `think` at a budget: the serial series."""
        return self.candidate.action.strategy == "think" and self.min_tokens is None

    @property
    def sampled_series(self) -> str | None:
        """For a best-of-n at one n read from a sampled file: the name of its series over n
        (`best-of-n weighted orm:X`), drawn as one line like the vote; else None."""
        a = self.candidate.action
        if a.strategy != "best-of-n" or self.kind != "parallel":
            return None
        return " ".join(part for part in self.label.split() if not part.startswith("n="))

    def on(self, mask: np.ndarray) -> Outcome:
        """The outcome on the questions of `mask` (within this config's own)."""
        return self.outcome.take(mask if self.mask is None else mask[self.mask])


@dataclass
class Frontier:
    model: str  # the model's folder
    names: dict[str, str]  # folder -> the model name its files record
    ids: list[str]
    held: np.ndarray
    configs: list[Config]  # the model's, then the bigger model's
    notes: list[str]
    pilot: Path  # the model's file load_candidates reads auto's pilot from


Loaded = list[tuple[CandidateSet, Candidate, Path]]


@cache
def _records(path: Path) -> tuple[dict, ...]:
    """The file's records, read once per run (a file still being written is read as it stood
    then; a partial last line is left out)."""
    return tuple(read_records(path).items)


def _kind(strategy: str) -> str:
    load_builtin_strategies()
    info = REGISTRY.get(strategy)
    return info.info.kind.value if info is not None else "parallel"


def _header(path: Path) -> dict:
    runs = [r for r in _records(path) if r.get("type") == "run"]
    if not runs:
        raise SystemExit(f"{path}: not a results file of `reason bench` (no 'run' line)")
    return runs[0]


def _samples(path: Path) -> list[dict]:
    """The first sample of each (question, strategy, budget), as bench's report reads them."""
    return unique_samples(list(_records(path)), path)[0]


def _progress(path: Path) -> tuple[int, int]:
    """(samples written, samples the run will write): every question of the dataset for every
    strategy and budget of the run line."""
    h = _header(path)
    want = (
        int(h.get("questions") or 0)
        * len(h.get("strategies") or [1])
        * len(h.get("budgets") or [1])
    )
    return len(_samples(path)), want


def _unreadable(path: Path) -> str | None:
    """Why the file cannot be read as a bench results file (None: it can). A file just created
    has no run line yet."""
    try:
        if not any(r.get("type") == "run" for r in _records(path)):
            return "no `reason bench` run line (yet)"
        _samples(path)
    except ReasonError as e:
        return str(e)
    return None


def _complete(path: Path) -> bool:
    done, want = _progress(path)
    return done > 0 and done >= want


def _can_pilot(path: Path) -> bool:
    """Whether load_candidates can take auto's pilot from the file: a sampled run at the
    model's temperature with PILOT or more branches on every question."""
    samples = _samples(path)
    return (
        bool(samples)
        and _header(path).get("temperature") is None
        and all(r["strategy"] in SAMPLED for r in samples)
        and min(len(r.get("answers") or []) for r in samples) >= PILOT
    )


def _select(cs: CandidateSet, ids: Sequence[str], c: Candidate) -> Outcome:
    where = {q: i for i, q in enumerate(cs.ids)}
    return c.alone.take(np.array([where[q] for q in ids], dtype=int))


def _pilot_file(files: list[Path]) -> Path | None:
    """The file load_candidates takes auto's pilots from: vote.jsonl when it can, else the
    first that can; None when none can."""
    for f in sorted(files, key=lambda p: (p.name != "vote.jsonl", p.name)):
        if _can_pilot(f):
            return f
    return None


def load_model(
    folder: Path, skip: set[Path], partial: bool, fallback: Path | None = None
) -> tuple[list[str], Loaded, list[str], Path | None]:
    """The folder's candidates as (the set read, candidate, file), the questions every file
    read answered (in the pilot's order), notes, and the pilot file. A file still being
    written is left out (named in a note) unless `partial`. Each file is read beside the pilot
    alone, so configurations tune would call repeats (forcing) are all kept. A folder with no
    file that can be a pilot (the bigger model's greedy run, its vote still running) is read
    beside `fallback`, another model's pilot: it only stands in for auto's pilot, which no
    number here uses."""
    notes: list[str] = []
    files = []
    for f in sorted(p for p in folder.glob("*.jsonl") if p.resolve() not in skip):
        unreadable = _unreadable(f)
        if unreadable:
            notes.append(f"left out {folder.name}/{f.name}: {unreadable}")
            continue
        done, want = _progress(f)
        if partial or _complete(f):
            files.append(f)
        else:
            notes.append(
                f"left out {folder.name}/{f.name}: {done} of {want} samples so far "
                "(--partial to include it)"
            )
    pilot = _pilot_file(files) or fallback
    if pilot is None:
        if files:
            notes.append(
                f"left out {folder.name}/: no file has {PILOT}+ sampled branches per question "
                "(a `vote -n 4` or more) to read the others beside"
            )
        return [], [], notes, None
    loaded: Loaded = []
    common: set[str] | None = None
    for f in [pilot, *(f for f in files if f != pilot)] if pilot in files else files:
        if f != pilot and f.name == pilot.name:
            notes.append(f"left out {folder.name}/{f.name}: named as its pilot {pilot}")
            continue
        try:
            cs = load_candidates([pilot] if f == pilot else [pilot, f], PILOT)
        except ReasonError as e:
            notes.append(f"left out {folder.name}/{f.name}: {e}")
            continue
        mine = [c for c in cs.candidates if c.source == f.name]
        if not mine:
            notes.append(
                f"left out {folder.name}/{f.name}: every configuration repeats {pilot.name}'s"
            )
            continue
        common = set(cs.ids) if common is None else common & set(cs.ids)
        loaded += [(cs, c, f) for c in mine]
    if common is None:
        return [], [], notes, pilot
    order = [str(r["id"]) for r in _samples(pilot)]
    return list(dict.fromkeys(q for q in order if q in common)), loaded, notes, pilot


def _configs(loaded: Loaded, ids: list[str], bigger: str | None) -> list[Config]:
    out: list[Config] = []
    for cs, c, path in loaded:
        m = _header(path).get("min_tokens") or None
        label = c.label + (f" --min-tokens {m}" if m else "")
        kind = "bigger model" if bigger else _kind(c.action.strategy)
        out.append(Config(label, kind, path.name, c, _select(cs, ids, c), m))
    labels = [c.label for c in out]
    out = [
        replace(c, label=f"{c.label} [{Path(c.source).stem}]") if labels.count(c.label) > 1 else c
        for c in out
    ]
    return [replace(c, label=f"{bigger}: {c.label}") for c in out] if bigger else out


def _name(folder: Path, loaded: Loaded) -> str:
    """The model the folder's files were run with, as their run lines record it."""
    names = sorted({str(_header(path).get("model")) for _, _, path in loaded})
    return names[0] if len(names) == 1 else folder.name


def load(root: Path, model: str | None, bigger: str, tuned: Path | None, partial: bool) -> Frontier:
    if not root.is_dir():
        raise SystemExit(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.jsonl")))
    mains = [p for p in folders if p.name != bigger and model in (None, p.name)]
    if len(mains) != 1:
        names = ", ".join(p.name for p in folders) or "none"
        raise SystemExit(f"give --model: one folder of {root} besides {bigger}/ (found: {names})")
    skip = {tuned.resolve()} if tuned else set()
    ids, loaded, notes, pilot = load_model(mains[0], skip, partial)
    if pilot is None or not loaded:
        raise SystemExit(
            f"{mains[0]}: no file to read: "
            + ("; ".join(notes) or f"no vote run with -n {PILOT} or more")
        )
    names = {mains[0].name: _name(mains[0], loaded)}
    big_loaded: Loaded = []
    big = root / bigger
    if big.is_dir() and any(big.glob("*.jsonl")):
        big_ids, big_loaded, big_notes, _ = load_model(big, skip, partial, fallback=pilot)
        notes += big_notes
        shared = [q for q in ids if q in set(big_ids)]
        if big_loaded and len(shared) < len(ids):
            notes.append(
                f"{bigger}/ answered {len(shared)} of the {len(ids)} questions: every figure is "
                "on those"
            )
        if big_loaded:
            ids = shared
            names[bigger] = _name(big, big_loaded)
    if len(ids) < 20:
        raise SystemExit(f"only {len(ids)} question(s) are in every file read")
    configs = _configs(loaded, ids, None) + _configs(big_loaded, ids, names.get(bigger))
    return Frontier(mains[0].name, names, ids, held_out_mask(ids, SEED), configs, notes, pilot)


def load_tuned(f: Frontier, path: Path) -> tuple[list[Config], list[str]]:
    """The tuned run's configurations, on the held-out questions it answered."""
    cs = load_candidates([f.pilot, path], PILOT)
    mask = f.held & np.isin(np.array(f.ids), cs.ids)
    notes = []
    if mask.sum() < f.held.sum():
        notes.append(f"{path.name}: {int(mask.sum())} of {int(f.held.sum())} held-out questions")
    ids = [q for q, m in zip(f.ids, mask, strict=True) if m]
    out = [
        Config(f"{c.label} (tuned)", "adaptive", path.name, c, _select(cs, ids, c), None, mask)
        for c in cs.candidates
        if c.source == path.name
    ]
    if not out:
        raise SystemExit(f"{path}: no configuration of its own beside {f.pilot.name}")
    return out, notes


# --- statistics --------------------------------------------------------------------------


def slices(ids: list[str]) -> list[tuple[str, np.ndarray]]:
    """("all", everything) and one mask per difficulty prefix, in order."""
    levels = sorted({m.group(1) for q in ids if (m := DIFFICULTY.match(q))})
    out = [("all", np.ones(len(ids), dtype=bool))]
    for d in levels:
        out.append((d, np.array([q.startswith(d + "-") for q in ids])))
    return out


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def accuracy(o: Outcome) -> str:
    n, right = len(o.correct), int(o.correct.sum())
    if not n:
        return "–"
    low, high = wilson(right, n)
    return f"{_pct(right / n)} ({low * 100:.1f}–{high * 100:.1f})"


def paired(a: Outcome, b: Outcome) -> tuple[float, float, float]:
    """a − b in accuracy on the same questions: mean and paired bootstrap 95%."""
    return bootstrap_mean(a.correct.astype(float) - b.correct.astype(float), SEED)


def _points(g: tuple[float, float, float]) -> str:
    return f"{g[0] * 100:+.1f} ({g[1] * 100:+.1f} to {g[2] * 100:+.1f})"


def verdict(g: tuple[float, float, float], better: str, worse: str) -> str:
    if g[1] > 0:
        return better
    if g[2] < 0:
        return worse
    return "no difference shown"


def cost(o: Outcome) -> float:
    return float(o.total.mean()) if len(o.total) else 0.0


def nearest_below(configs: list[Config], mask: np.ndarray, tokens: float) -> tuple[Config, bool]:
    """The config with the most tokens at or below `tokens` on `mask`; else the cheapest
    (False: it costs more)."""
    priced = sorted(configs, key=lambda c: (cost(c.on(mask)), c.label))
    below = [c for c in priced if cost(c.on(mask)) <= tokens + 1e-9]
    return (below[-1], True) if below else (priced[0], False)


def best_within(configs: list[Config], mask: np.ndarray, tokens: float | None) -> Config | None:
    """The most accurate config on `mask` at or below `tokens` (None: any); ties: fewer tokens."""
    fits = [c for c in configs if tokens is None or cost(c.on(mask)) <= tokens + 1e-9]
    if not fits:
        return None
    return max(
        fits,
        key=lambda c: (int(c.on(mask).correct.sum()), -cost(c.on(mask))),
    )


# --- text --------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """A markdown table, padded so it also reads as plain text."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)]
    return [line(headers), "|" + "|".join(rule) + "|", *[line(r) for r in rows]]


def _ordered(configs: list[Config]) -> list[Config]:
    def key(c: Config) -> tuple[int, float, str]:
        kind = KINDS.index(c.kind) if c.kind in KINDS else len(KINDS)
        return kind, cost(c.outcome), c.label

    return sorted(configs, key=key)


def configuration_table(f: Frontier, mask: np.ndarray) -> list[str]:
    """Every configuration on `mask`: accuracy, tokens per question, and accuracy @ total tokens
    per difficulty."""
    parts = [(name, part & mask) for name, part in slices(f.ids)[1:]]
    headers = ["configuration", "kind", "accuracy (95%)", "generated", "verifier", "total"]
    headers += [f"{name} (n={int(part.sum())}) acc @ tok" for name, part in parts]
    rows = []
    for c in _ordered(f.configs):
        o = c.on(mask)
        row = [c.label, c.kind, accuracy(o), f"{o.generated.mean():.1f}",
               f"{o.verifier.mean():.1f}", f"{o.total.mean():.1f}"]  # fmt: skip
        for _, part in parts:
            p = c.on(part)
            row.append(
                f"{_pct(float(p.correct.mean()))} @ {cost(p):.0f}" if len(p.correct) else "–"
            )
        rows.append(row)
    return table(headers, rows, set(range(2, len(headers))))


def serial_vs_parallel(f: Frontier) -> list[str]:
    """Each serial configuration against the vote with the most tokens at or below its own,
    matched and paired within each slice."""
    serial = [c for c in f.configs if c.kind == "serial"]
    votes = [c for c in f.configs if c.vote and c.kind == "parallel"]
    if not serial or not votes:
        return ["(no serial configuration or no vote run: nothing to pair)"]
    rows, tally = [], {}
    for s in sorted(serial, key=lambda c: (cost(c.outcome), c.label)):
        for name, mask in slices(f.ids):
            so = s.on(mask)
            v, at_or_below = nearest_below(votes, mask, cost(so))
            vo = v.on(mask)
            g = paired(so, vo)
            said = verdict(g, "serial better", "parallel better")
            tally.setdefault(name, []).append(said)
            rows.append([
                s.label, name, str(int(mask.sum())), f"{_pct(float(so.correct.mean()))} @ "
                f"{cost(so):.0f}", f"{v.label}{'' if at_or_below else ' *'}",
                f"{_pct(float(vo.correct.mean()))} @ {cost(vo):.0f}", _points(g), said,
            ])  # fmt: skip
    out = table(
        ["serial", "slice", "n", "serial acc @ tok/q", "parallel (vote)",
         "parallel acc @ tok/q", "serial − parallel, pts (95%)", "verdict"],
        rows, {2, 3, 5, 6},
    )  # fmt: skip
    if any(r[4].endswith(" *") for r in rows):
        out.append("* no vote is as cheap: the cheapest vote, which costs more")
    out.append("")
    for name, said in tally.items():
        n = len(said)
        out.append(
            f"{name}: serial beats the vote at equal or fewer tokens in "
            f"{said.count('serial better')} of {n} serial configurations, the vote beats serial "
            f"in {said.count('parallel better')}, no difference shown in "
            f"{said.count('no difference shown')}."
        )
    return out


def adaptive_lines(f: Frontier, tuned: list[Config]) -> list[str]:
    """Each auto run on the held-out half (the questions it answered): against the best uniform
    strategy at or below its tokens, the most accurate uniform strategy at any cost, and the
    bigger model's best, paired on the same questions."""
    uniform = [c for c in f.configs if c.kind in ("serial", "parallel")]
    big = [c for c in f.configs if c.kind == "bigger model"]
    autos = [c for c in f.configs if c.kind == "adaptive"] + tuned
    if not autos:
        return ["(no auto run)"]
    out = []
    for a in autos:
        mask = f.held if a.mask is None else f.held & a.mask
        ao = a.on(mask)
        out.append(f"{a.label}: {accuracy(ao)} at {cost(ao):.1f} tok/q ({len(ao.correct)} q)")
        for what, pool, tokens in (
            ("best uniform at or below its tokens", uniform, cost(ao)),
            ("most accurate uniform", uniform, None),
            ("bigger model's best", big, None),
        ):
            b = best_within(pool, mask, tokens)
            if b is None:
                out.append(f"  {what}: none")
                continue
            bo = b.on(mask)
            g = paired(ao, bo)
            ratio = f"{cost(ao) / cost(bo):.2f}x" if cost(bo) else "–"
            out.append(
                f"  {what}: {b.label}, {accuracy(bo)} at {cost(bo):.1f} tok/q; auto uses "
                f"{ratio} its tokens, auto − it {_points(g)} pts paired: "
                f"{verdict(g, 'auto better', 'auto worse')}"
            )
    return out


def report(f: Frontier, tuned: list[Config], sources: list[str]) -> str:
    n, held = len(f.ids), int(f.held.sum())
    parts = " and ".join(
        f"{name} {int(m.sum())}" for name, m in slices(f.ids)[1:]
    )  # fmt: skip
    out = [
        f"# Serial vs parallel frontier: {f.names[f.model]}",
        "",
        f"files: {', '.join(sources)}",
        f"{n} questions every file answered{f' ({parts})' if parts else ''}; tune's held-out "
        f"half (question-id hash, seed {SEED}): {held}",
        "tokens are means per question: generated, read by a verifier, and their total; "
        "accuracy with its Wilson 95% interval",
        *(f"note: {x}" for x in f.notes),
        "",
        f"## Every configuration, all {n} questions",
        "",
        *configuration_table(f, np.ones(n, dtype=bool)),
        "",
        f"## Every configuration, the {held} held-out questions",
        "",
        *configuration_table(f, f.held),
        "",
        "## Serial against parallel at equal compute",
        "",
        "Each serial configuration against the `vote -n k` with the most tokens at or below its "
        "own, matched within each slice; paired bootstrap 95% over the slice's questions.",
        "",
        *serial_vs_parallel(f),
        "",
        f"## auto on the {held} held-out questions",
        "",
        *adaptive_lines(f, tuned),
    ]
    return "\n".join(out) + "\n"


def _tag(n: int, last: int) -> str:
    """A vote's point is tagged at n = 1, 2, 4, 8, ... and its last n."""
    return f"n={n}" if n == last or n & (n - 1) == 0 else ""


def plot(f: Frontier, tuned: list[Config], path: Path) -> None:
    """Accuracy (Wilson 95% bars) against mean total tokens per question, log x. Serial runs are
    orange squares and dashed lines, parallel ones blue circles and solid lines, auto green
    stars, the bigger model red with a dotted line; the vote, each best-of-n pick (purple) and
    the think ladder are series with their n and budgets written at the points, every other
    configuration has its own marker and legend entry. On the held-out half when a tuned run
    is shown (it is only fair there), else on every question."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    mask = f.held if tuned else np.ones(len(f.ids), dtype=bool)
    fig, ax = plt.subplots(figsize=(12, 6.5), dpi=120)

    def point(c: Config) -> tuple[float, float, float, float]:
        o = c.on(mask if c.mask is None else mask & c.mask)
        right, n = int(o.correct.sum()), len(o.correct)
        low, high = wilson(right, n)
        y = right / n * 100 if n else 0.0
        return cost(o), y, y - low * 100, high * 100 - y

    def draw(cs: list[Config], name: str, color: str, marker: str, line: str = "none",
             size: float = 5, tags: list[str] | None = None,
             left: bool = False) -> None:  # fmt: skip
        if not cs:
            return
        pts = sorted((point(c), i) for i, c in enumerate(cs))
        xs, ys = [p[0] for p, _ in pts], [p[1] for p, _ in pts]
        err = [[p[2] for p, _ in pts], [p[3] for p, _ in pts]]
        ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, linestyle=line, ms=size,
                    capsize=2, elinewidth=0.8, alpha=0.9, label=name)  # fmt: skip
        if not tags:
            return
        # points within 6% of tokens and half a point of accuracy share one tag ("64–512")
        groups: list[list[tuple[float, float, str]]] = []
        for (x, y, *_), i in pts:
            g = groups[-1] if groups else None
            if g and x <= g[0][0] * 1.06 and abs(y - g[0][1]) < 0.5:
                g.append((x, y, tags[i]))
            else:
                groups.append([(x, y, tags[i])])
        for g in groups:
            named = [t for _, _, t in g if t]
            if named:
                text = named[0] if len(named) == 1 else f"{named[0]}–{named[-1]}"
                ax.annotate(text, (g[0][0], g[0][1]), textcoords="offset points",
                            xytext=(-7, -3) if left else (0, -13),
                            ha="right" if left else "center", fontsize=7,
                            color=color)  # fmt: skip

    mine = [c for c in f.configs if c.kind != "bigger model"]
    votes = sorted((c for c in mine if c.vote), key=lambda c: c.candidate.action.branches)
    ladder = sorted(
        (c for c in mine if c.kind == "serial" and c.think_ladder),
        key=lambda c: c.candidate.action.max_tokens or 0,
    )
    draw(votes, f"parallel: vote n=1..{len(votes)}", "tab:blue", "o", "-",
         tags=[_tag(c.candidate.action.branches, len(votes)) for c in votes])  # fmt: skip
    draw(ladder, "serial: think at a budget of N tokens", "tab:orange", "s", "--",
         tags=[str(c.candidate.action.max_tokens) for c in ladder], left=True)  # fmt: skip
    series: dict[str, list[Config]] = {}
    for c in mine:
        if name := c.sampled_series:
            series.setdefault(name, []).append(c)
    styles = [("-", "D"), ("-.", "d")] * len(series)  # the picks: best, weighted
    for (name, cs), (line, marker) in zip(sorted(series.items()), styles, strict=False):
        ns = sorted(c.candidate.action.branches for c in cs)
        cs.sort(key=lambda c: c.candidate.action.branches)
        draw(cs, f"parallel: {name.replace('best-of-n', f'best-of-n n={ns[0]}..{ns[-1]}')}",
             "tab:purple", marker, line, size=4,
             tags=[_tag(n, ns[-1]) for n in ns])  # fmt: skip
    others = [
        ("serial", [c for c in mine if c.kind == "serial" and not c.think_ladder], "tab:orange",
         "DPhv<>"),
        ("parallel", [c for c in mine if c.kind in ("parallel", "search") and not c.vote
                      and not c.sampled_series], "tab:blue", "^v<>ph"),
        ("auto", [c for c in mine if c.kind == "adaptive"] + tuned, "tab:green", "*P"),
    ]  # fmt: skip
    for what, cs, color, markers in others:
        for i, c in enumerate(sorted(cs, key=lambda c: c.label)):
            label = c.label if what == "auto" else f"{what}: {c.label}"
            draw([c], label, color, markers[i % len(markers)], size=8 if what == "auto" else 6)
    big = [c for c in f.configs if c.kind == "bigger model"]
    big_votes = sorted((c for c in big if c.vote), key=lambda c: c.candidate.action.branches)
    name = next((v for k, v in f.names.items() if k != f.model), "")
    big_tags = [_tag(c.candidate.action.branches, len(big_votes)) for c in big_votes]
    draw(big_votes, f"bigger model, {name}: vote n=1..{len(big_votes)}", "tab:red", "o", ":",
         size=4, tags=big_tags)  # fmt: skip
    for i, c in enumerate(sorted((c for c in big if not c.vote), key=lambda c: c.label)):
        draw([c], f"bigger model, {c.label}", "tab:red", "XPD"[i % 3], size=8)

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks = [2**e for e in range(3, 16) if lo <= 2**e <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("mean tokens per question (generated + read by a verifier), log scale")
    ax.set_ylabel("accuracy, % (bars: Wilson 95%)")
    where = f"the {int(mask.sum())} held-out questions" if tuned else f"all {len(f.ids)} questions"
    ax.set_title(f"{f.names[f.model]}: serial vs parallel, accuracy against compute ({where})")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a folder per model (benchmarks/frontier.sh's OUT)")
    parser.add_argument("--tuned", type=Path, help="a bench file of auto following a tuned policy")
    parser.add_argument("--plot", type=Path, help="write the figure here (PNG)")
    parser.add_argument("--model", help="the model's folder, when DIR holds several")
    parser.add_argument("--bigger", default="gemma", help="the bigger model's folder [gemma]")
    parser.add_argument("--partial", action="store_true", help="include files still being written")
    args = parser.parse_args(argv)
    f = load(args.dir, args.model, args.bigger, args.tuned, args.partial)
    tuned: list[Config] = []
    sources = sorted({f"{f.model}/{c.source}" for c in f.configs if c.kind != "bigger model"})
    sources += sorted({f"{args.bigger}/{c.source}" for c in f.configs if c.kind == "bigger model"})
    if args.tuned:
        tuned, notes = load_tuned(f, args.tuned)
        f.notes += notes
        sources.append(args.tuned.name)
    sys.stdout.write(report(f, tuned, sources))
    if args.plot:
        plot(f, tuned, args.plot)


if __name__ == "__main__":
    main()
