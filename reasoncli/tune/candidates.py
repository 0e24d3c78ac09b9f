"""Bench result files -> candidate configurations, each with per-question correctness and cost.

A `vote` or scored `best-of-n` file with N branches per question is N configurations per pick
(`vote n=k`, `best-of-n n=k`, its weighted vote), read from its first k branches with the tool's
own picks (`reasoncli.bench.picks`: branch i is seeded seed+i, so the first k are what a
k-branch run samples, voted in the order it finishes them). Any other file is one configuration
per strategy and budget, at its own answer and cost.

Each candidate has up to three outcomes: `alone` (the configuration run by itself: the uniform
strategy), `after_pilot` (what `auto` does when a policy picks it): a vote that widens the
pilot reuses the pilot's branches, voted pilots first as `auto` finishes them; any other
strategy runs after the pilot and pays for it), and `after_scored_pilot` (the same when the
pilots were scored by the pilot file's verifier, which a `verifier-*` estimate needs: the
scoring is paid for, and a best-of-n judged by that verifier widens the pilot, scores kept).
Cost is all the compute: generated tokens plus the tokens a verifier read, where the file
records them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasoncli.bench.picks import finish_order, pick_is_right
from reasoncli.bench.report import unique_samples
from reasoncli.bench.store import read_records
from reasoncli.errors import InputError, UsageError
from reasoncli.tune.difficulty import Pilot
from reasoncli.tune.policy import Action

__all__ = ["Candidate", "CandidateSet", "Outcome", "Pilots", "auto_order", "load_candidates"]

JUDGED = ("best-of-n", "beam", "dvts")  # strategies whose verifier options matter
SEARCH = ("beam", "dvts")
SAMPLED = ("vote", "best-of-n")  # branch i seeded seed+i: the first k are a k-branch run


@dataclass(frozen=True)
class Outcome:
    """Per question (in `CandidateSet.ids` order): right or not, and what it cost."""

    correct: np.ndarray
    generated: np.ndarray
    verifier: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.generated + self.verifier

    def take(self, mask: np.ndarray) -> Outcome:
        return Outcome(self.correct[mask], self.generated[mask], self.verifier[mask])


@dataclass(frozen=True)
class Candidate:
    action: Action
    source: str
    alone: Outcome
    after_pilot: Outcome | None  # None: auto cannot run it after a pilot (vote k < pilot, auto)
    verifier_note: str = ""  # how the verifier's tokens were counted, when not exactly
    after_scored_pilot: Outcome | None = None  # None also when the pilots have no scores

    @property
    def label(self) -> str:
        return self.action.label()


@dataclass(frozen=True)
class Pilots:
    """The first `size` branches of a sampled run: what `auto`'s pilot would have drawn."""

    source: str
    size: int
    max_tokens: int
    pilots: list[Pilot]
    tokens: np.ndarray  # generated pilot tokens per question
    pass_rate: np.ndarray  # share of right branches after the pilot: the "true" difficulty
    verifier: str | None = None  # the verifier that scored the pilots, where the file has one
    verifier_tokens: np.ndarray | None = None  # what it read of the pilots, per question

    @property
    def scored(self) -> bool:
        return self.verifier is not None


@dataclass
class CandidateSet:
    ids: list[str]
    candidates: list[Candidate]
    pilots: Pilots
    model: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        """The files the candidates came from, in the order read."""
        return list(dict.fromkeys(c.source for c in self.candidates))


def auto_order(record: dict[str, Any], pilot: int, k: int) -> list[int]:
    """Branch ids 0..k-1 in the order `auto` finishes them when it widens a pilot of `pilot`
    branches to k: the pilots first (in their own finish order), then the widening branches,
    launched together, in theirs."""
    tokens, reasons = record["branch_tokens"], record["finish_reasons"]
    head = finish_order(tokens[:pilot], reasons[:pilot])
    tail = finish_order(tokens[pilot:k], reasons[pilot:k])
    return head + [pilot + i for i in tail]


@dataclass
class _Group:
    """The samples of one (file, strategy, budget)."""

    path: Path
    header: dict[str, Any]
    strategy: str
    records: dict[str, dict[str, Any]]

    @property
    def sampled(self) -> bool:
        return self.strategy in SAMPLED

    @property
    def branches(self) -> int:
        return min(len(r["answers"]) for r in self.records.values())

    @property
    def scored(self) -> bool:
        return all(r.get("scores") for r in self.records.values())

    def action(self, branches: int, pick: str | None = None, strategy: str | None = None) -> Action:
        h = self.header
        name = strategy or self.strategy
        judged = name in JUDGED
        first = next(iter(self.records.values()))
        return Action(
            strategy=name,
            branches=branches,
            verifier=h.get("verifier") if judged else None,
            pick=pick,
            aggregate=h.get("aggregate") if judged and h.get("aggregate") != "last" else None,
            beam_width=h.get("beam_width") if name in SEARCH else None,
            temperature=h.get("temperature"),
            max_tokens=int(first["max_tokens"]),
        )


def _groups(paths: Sequence[Path]) -> list[_Group]:
    groups: list[_Group] = []
    for path in paths:
        records = read_records(path)
        header = records.run_header()
        samples, _ = unique_samples(records.items, path)
        by_cell: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for r in samples:
            by_cell.setdefault((r["strategy"], r["budget"]), {})[str(r["id"])] = r
        for (strategy, _budget), recs in by_cell.items():
            groups.append(_Group(path, header, strategy, recs))
    return groups


def _pilot_source(groups: list[_Group], size: int) -> _Group:
    for g in groups:
        if g.sampled and g.header.get("temperature") is None and g.branches >= size:
            return g
    raise UsageError(
        f"no file has {size} sampled branches per question to stand in for auto's pilot: "
        f"give a `vote` (or `best-of-n`) run with -n {size} or more at the model's temperature"
    )


def _pilots(group: _Group, ids: list[str], size: int) -> Pilots:
    max_tokens = int(group.header["max_tokens"])
    # scores auto can reproduce: its pilots are scored as a plain best-of-n (aggregate last)
    plain = group.header.get("aggregate") in (None, "last")
    scored = group.strategy == "best-of-n" and group.scored and plain
    pilots, tokens, rates, judged = [], [], [], []
    for i in ids:
        r = group.records[i]
        scores = r["scores"][:size] if scored else None
        pilots.append(Pilot(r["answers"][:size], r["branch_tokens"][:size], max_tokens, scores))
        tokens.append(sum(r["branch_tokens"][:size]))
        judged.append(_judge_share(r, size) if scored else 0.0)
        rest = r["labels"][size:] if len(r["labels"]) - size >= 4 else r["labels"]
        right = [g is not None and bool(r["groups"][g]["correct"]) for g in rest]
        rates.append(float(np.mean(right)) if right else 0.0)
    return Pilots(
        source=group.path.name,
        size=size,
        max_tokens=max_tokens,
        pilots=pilots,
        tokens=np.array(tokens, dtype=float),
        pass_rate=np.array(rates),
        verifier=group.header.get("verifier") if scored else None,
        verifier_tokens=np.array(judged, dtype=float) if scored else None,
    )


def _arrays(rows: list[tuple[bool, float, float]]) -> Outcome:
    correct, generated, verifier = zip(*rows, strict=True) if rows else ((), (), ())
    return Outcome(
        np.array(correct, dtype=bool),
        np.array(generated, dtype=float),
        np.array(verifier, dtype=float),
    )


def _judge_share(r: dict[str, Any], k: int) -> float:
    """Verifier tokens of the first k branches. Exact where the file records what the judge
    read (`_exact`): its prompt once, plus the first k branches. Else the run's count shared
    out by generated tokens, which undercounts small k: a run of one pays the whole prompt."""
    total = float(r.get("verifier_tokens") or 0)
    tokens = r["branch_tokens"]
    if k >= len(tokens):
        return total
    if _exact(r):
        return float(r["verifier_prompt_tokens"] + sum(r["verifier_branch_tokens"][:k]))
    whole = sum(tokens)
    return total if whole == 0 else total * sum(tokens[:k]) / whole


def _exact(r: dict[str, Any]) -> bool:
    """Whether the record says what the judge read of its prompt and of each branch."""
    read = r.get("verifier_branch_tokens") or []
    return bool(read) and None not in read and "verifier_prompt_tokens" in r


def _after(alone: Outcome, pilots: Pilots, scored: bool = False) -> Outcome:
    """A strategy run after the pilot: it pays for the pilot's tokens (and their scoring)."""
    judged = pilots.verifier_tokens if scored and pilots.verifier_tokens is not None else 0.0
    return Outcome(alone.correct, alone.generated + pilots.tokens, alone.verifier + judged)


def _widened(
    recs: list[dict[str, Any]], pilots: Pilots, k: int, how: str, pilots_scored: bool
) -> Outcome:
    """`auto` widening its pilot to k branches and answering by `how` over all of them,
    pilots first as it finishes them. A best-of-n pick has every branch judged; a vote only
    the pilots, and only when `pilots_scored`."""
    rows = []
    for i, r in enumerate(recs):
        verifier = 0.0
        if how != "maj":
            verifier = _judge_share(r, k)
        elif pilots_scored and pilots.verifier_tokens is not None:
            verifier = float(pilots.verifier_tokens[i])
        right = pick_is_right(r, k, how, auto_order(r, pilots.size, k))
        rows.append((right, float(sum(r["branch_tokens"][:k])), verifier))
    return _arrays(rows)


def _sampled_candidates(g: _Group, ids: list[str], pilots: Pilots) -> list[Candidate]:
    out = []
    recs = [g.records[i] for i in ids]
    recorded = all("verifier_tokens" in r for r in recs)
    exact = all(_exact(r) for r in recs)
    picks: list[tuple[str, str | None]] = [("maj", None)]
    if g.scored:
        picks += [("best", "best"), ("weighted", "weighted")]
    for how, pick in picks:
        for k in range(1 if how == "maj" else 2, g.branches + 1):
            strategy = "vote" if how == "maj" else "best-of-n"
            action = g.action(k, pick if pick == "weighted" else None, strategy)
            judged = how != "maj"
            alone = _arrays(
                [
                    (
                        pick_is_right(r, k, how),
                        float(sum(r["branch_tokens"][:k])),
                        _judge_share(r, k) if judged else 0.0,
                    )
                    for r in recs
                ]
            )
            after: Outcome | None = None  # None: the pilot already drew more branches
            if not action.widens_pilot(pilots.max_tokens):
                after = _after(alone, pilots)
            elif k >= pilots.size:
                after = _widened(recs, pilots, k, "maj", pilots_scored=False)
            scored: Outcome | None = None  # None: the pilots have no scores, or drew more
            if pilots.scored and not action.widens_pilot(pilots.max_tokens, pilots.verifier):
                scored = _after(alone, pilots, scored=True)
            elif pilots.scored and k >= pilots.size:
                scored = _widened(recs, pilots, k, how, pilots_scored=True)
            note = ""
            if judged and not recorded:
                note = "verifier tokens not recorded in this file (counted as 0)"
            elif judged and k < g.branches and not exact:
                note = "verifier tokens: the run's count, shared out by generated tokens"
            out.append(Candidate(action, g.path.name, alone, after, note, scored))
    return out


def _own_candidates(g: _Group, ids: list[str], pilots: Pilots) -> list[Candidate]:
    recs = [g.records[i] for i in ids]
    rows = [
        (bool(r["correct"]), float(r["tokens"]), float(r.get("verifier_tokens") or 0)) for r in recs
    ]
    alone = _arrays(rows)
    branches = int(recs[0]["branches"])
    action = g.action(branches)
    judged = g.strategy in JUDGED
    note = ""
    if judged and not all("verifier_tokens" in r for r in recs):
        note = "verifier tokens not recorded in this file (counted as 0)"
    if g.strategy == "auto":  # auto never picks auto
        return [Candidate(action, g.path.name, alone, None, note)]
    scored = _after(alone, pilots, scored=True) if pilots.scored else None
    return [Candidate(action, g.path.name, alone, _after(alone, pilots), note, scored)]


def load_candidates(paths: Sequence[Path], pilot: int) -> CandidateSet:
    """Every configuration the files hold, on the questions every file answered."""
    if pilot < 1:
        raise UsageError("--pilot must be at least 1")
    groups = _groups(paths)
    if not groups:
        raise InputError("no samples in the results files")
    source = _pilot_source(groups, pilot)
    groups.remove(source)
    groups.insert(0, source)  # its votes are the ones auto's widening reproduces
    common = set(source.records)
    for g in groups[1:]:
        common &= set(g.records)
    ids = [i for i in source.records if i in common]
    notes = []
    dropped = max(len(g.records) for g in groups) - len(ids)
    if dropped:
        notes.append(f"{dropped} question(s) not in every file were left out")
    if len(ids) < 20:
        raise InputError(f"only {len(ids)} question(s) are in every file; tune needs 20 or more")
    pilots = _pilots(source, ids, pilot)
    seen: dict[Action, str] = {}
    candidates: list[Candidate] = []
    repeated: set[str] = set()
    models = {str(g.header.get("model")) for g in groups}
    if len(models) > 1:
        notes.append(f"the files come from different models: {', '.join(sorted(models))}")
    for g in groups:
        made = _sampled_candidates(g, ids, pilots) if g.sampled else _own_candidates(g, ids, pilots)
        for c in made:
            if c.action in seen:
                repeated.add(c.source)
                continue
            seen[c.action] = c.source
            candidates.append(c)
    if repeated:
        notes.append(
            f"configurations that {', '.join(sorted(repeated))} repeat were read from the "
            "file before it"
        )
    return CandidateSet(ids, candidates, pilots, next(iter(models)) if len(models) == 1 else None,
                        notes)  # fmt: skip
