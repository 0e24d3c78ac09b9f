"""The settings of one training run: flags merged with defaults, or with a resumed run's own.

A run directory keeps its settings in `run.json`; `--resume` reuses them, so a continued run
trains the same way it started. Only the step target, the checkpoint interval and the export
format may change on resume; any other flag that disagrees is a UsageError.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from reasoncli.errors import InputError, UsageError
from reasoncli.models.schema import NAME_RE
from reasoncli.train.arithmetic import DIFFICULTIES
from reasoncli.train.data import TASKS
from reasoncli.train.request import TrainRequest
from reasoncli.train.think_format import FORMATS

__all__ = [
    "EXPORT_TYPES",
    "RUN_FILE",
    "RunPlan",
    "TrainRequest",
    "TrainSettings",
    "clear_run_dir",
    "latest_checkpoint",
    "resolve_settings",
]

RUN_FILE = "run.json"
PROVENANCE_KEY = "provenance"
"""run.json's record of the shapes and sources training could see (not a setting)."""
EXPORT_TYPES = ("q8_0", "f16")
CHANGEABLE_ON_RESUME = frozenset({"steps", "checkpoint_every", "export"})
ARITHMETIC_HELDOUT = 100


@dataclass(frozen=True)
class TrainSettings:
    model: str
    """The --model argument: a registry name, or an absolute .gguf path."""
    out: str
    task: str | None = "arithmetic"
    data: str | None = None
    difficulty: int = 1
    limit: int | None = None
    heldout: int = ARITHMETIC_HELDOUT
    steps: int = 100
    group_size: int = 8
    prompts_per_step: int = 2
    learning_rate: float = 1e-5
    warmup_steps: int = 10
    temperature: float = 0.9
    kl: float = 0.0
    pass_k: int = 1
    """Optimize pass@k (1: plain GRPO's pass@1); see `reasoncli.train.pass_at_k`."""
    max_tokens: int = 128
    seed: int = 0
    checkpoint_every: int = 50
    export: str = "q8_0"
    """q8_0, or f16 (the default with --cold-start: Q8_0 rounds a cold start away)."""
    gradient_checkpointing: bool = False
    format: str = "answer"
    """answer: reason, then 'The answer is X'; think: R1-Zero's <think> format (think_format)."""
    cold_start: int = 0
    """--format think: fine-tune first on up to N of the model's own right solutions, rewrapped
    in the think format (DeepSeek-R1's cold start; `reasoncli.train.cold_start`); 0: none."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> TrainSettings:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k != PROVENANCE_KEY}
        unknown = sorted(set(data) - known)
        if unknown or "model" not in data or "out" not in data:
            raise InputError(f"{where}: not a `reason train` run file")
        return cls(**data)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The `checkpoint-N` directory with the largest N that Trainer finished writing."""
    found = []
    for path in run_dir.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if m and (path / "trainer_state.json").is_file():
            found.append((int(m.group(1)), path))
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: Path | None) -> int:
    """The optimizer step a checkpoint was saved at (0 for none)."""
    if checkpoint is None:
        return 0
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("global_step", 0))


@dataclass(frozen=True)
class RunPlan:
    settings: TrainSettings
    run_dir: Path
    resuming: bool
    clear_run_dir: bool = False
    """--force over an earlier run: cleared when training starts, after every check passed."""


def resolve_settings(request: TrainRequest, default_model: str) -> RunPlan:
    """Settings and run directory, after every check that needs no model or data."""
    if request.resume is not None:
        settings, run_dir = _resumed(request)
        plan = RunPlan(settings, run_dir, resuming=True)
    else:
        settings = _fresh(request, default_model)
        run_dir = (request.run_dir or Path("runs") / settings.out).expanduser().absolute()
        plan = RunPlan(settings, run_dir, False, _must_clear(run_dir, request.force))
    _validate(settings)
    return plan


def clear_run_dir(run_dir: Path) -> None:
    """Remove an earlier run (only ever one with a run file: see `_must_clear`)."""
    if (run_dir / RUN_FILE).is_file():
        shutil.rmtree(run_dir)


def _given(request: TrainRequest) -> dict[str, Any]:
    """The settings given, in `TrainSettings`' order (a resume names the first that differs)."""
    given = {f.name: getattr(request, f.name) for f in fields(TrainSettings)}
    return {k: v for k, v in given.items() if v is not None}


def _fresh(request: TrainRequest, default_model: str) -> TrainSettings:
    given = _given(request)
    if request.task is not None and request.data is not None:
        raise UsageError("give --task or --data, not both")
    if request.data is not None:
        given.setdefault("task", None)
        given["data"] = _data_arg(request.data)
        if request.difficulty is not None:
            raise UsageError("--difficulty applies to --task arithmetic, not to --data")
        given.setdefault("heldout", 0)
    model = request.model or default_model
    if model.lower().endswith(".gguf") or os.sep in model or "/" in model:
        path = Path(model).expanduser()
        model = str(path.absolute()) if path.exists() else model
    given["model"] = model
    given.setdefault("out", _default_out(model))
    given.setdefault("warmup_steps", given.get("steps", TrainSettings.steps) // 10)
    if given.get("cold_start"):
        # A cold start from a Q8_0 GGUF moves most weights by less than half a Q8_0 step, so a
        # Q8_0 export rounds them back onto the source's grid and loses it (closing </think>).
        given.setdefault("export", "f16")
    return TrainSettings(**given)


def _data_arg(data: str) -> str:
    """An existing file as an absolute path (a resumed run may start elsewhere); anything else,
    such as the name of a shipped sample, as given."""
    path = Path(data).expanduser()
    return str(path.absolute()) if path.exists() else data


def _default_out(model: str) -> str:
    stem = Path(model).stem if model.lower().endswith(".gguf") else model
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") + "-grpo"


def _resumed(request: TrainRequest) -> tuple[TrainSettings, Path]:
    assert request.resume is not None
    run_dir = request.resume.expanduser().absolute()
    if request.run_dir is not None and request.run_dir.expanduser().absolute() != run_dir:
        raise UsageError("--resume already names the run directory; drop --run-dir")
    run_file = run_dir / RUN_FILE
    try:
        saved = TrainSettings.from_json(json.loads(run_file.read_text(encoding="utf-8")), run_file)
    except FileNotFoundError:
        raise UsageError(f"{run_dir} is not a training run (no {RUN_FILE})") from None
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise InputError(f"{run_file}: cannot read: {exc}") from None
    given = _given(request)
    if "data" in given:
        given["data"] = _data_arg(given["data"])
    if "model" in given and given["model"] != saved.model:
        path = Path(given["model"]).expanduser()
        if path.exists() and str(path.absolute()) == saved.model:
            given["model"] = saved.model
    for name, value in given.items():
        if name not in CHANGEABLE_ON_RESUME and value != getattr(saved, name):
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{flag} {value} differs from {getattr(saved, name)} in {run_file}; a resumed run "
                f"keeps its settings (only {', '.join(sorted(CHANGEABLE_ON_RESUME))} may change)"
            )
    return replace(saved, **{k: v for k, v in given.items() if k in CHANGEABLE_ON_RESUME}), run_dir


def _must_clear(run_dir: Path, force: bool) -> bool:
    """A fresh run needs an empty directory; --force clears one of ours, never a stranger's."""
    if not run_dir.exists():
        return False
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} is a file")
    if not any(run_dir.iterdir()):
        return False
    if not (run_dir / RUN_FILE).is_file():
        raise UsageError(f"run directory {run_dir} is not empty; choose another with --run-dir")
    if not force:
        raise UsageError(
            f"{run_dir} already holds a training run: continue it with --resume {run_dir}, or "
            "start over with --force"
        )
    return True


def _validate(s: TrainSettings) -> None:
    if not re.match(NAME_RE, s.out) or len(s.out) > 100:
        raise UsageError(
            f"--out {s.out!r}: use letters, digits, '.', '_' and '-' (starting with a letter or "
            "digit)"
        )
    if s.group_size < 2:
        raise UsageError(
            "--group-size must be at least 2: GRPO's advantage compares completions within a group"
        )
    if s.task is not None and s.task not in TASKS:
        raise UsageError(f"unknown --task {s.task!r}; known: {', '.join(TASKS)}")
    if s.difficulty not in DIFFICULTIES:
        raise UsageError(f"--difficulty must be one of {', '.join(map(str, DIFFICULTIES))}")
    if s.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {s.format!r}")
    if s.cold_start and s.format != "think":
        raise UsageError("--cold-start rewraps solutions in the think format: add --format think")
    if s.export not in EXPORT_TYPES:
        raise UsageError(f"--export must be one of {', '.join(EXPORT_TYPES)}, not {s.export!r}")
    if s.temperature <= 0:
        raise UsageError("--temperature must be above 0: GRPO needs different completions")
    if not 1 <= s.pass_k < s.group_size:
        raise UsageError(
            f"--pass-k {s.pass_k}: use 1 up to --group-size - 1 ({s.group_size - 1}); at the "
            "group size every completion gets the same credit and nothing is learned"
        )
    checks = {
        "--steps": s.steps >= 1,
        "--prompts-per-step": s.prompts_per_step >= 1,
        "--max-tokens": s.max_tokens >= 1,
        "--checkpoint-every": s.checkpoint_every >= 1,
        "--learning-rate": s.learning_rate > 0,
        "--warmup-steps": s.warmup_steps >= 0,
        "--kl": s.kl >= 0,
        "--heldout": s.heldout >= 0,
        "--cold-start": s.cold_start >= 0,
        "--limit": s.limit is None or s.limit >= 1,
    }
    bad = [flag for flag, ok in checks.items() if not ok]
    if bad:
        raise UsageError(f"{bad[0]} is out of range")
