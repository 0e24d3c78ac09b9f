"""The `reason` command in a child process, as the tests that need a real process run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def reason(
    *args: str,
    input: str | None = "",
    env: Mapping[str, str | None] | None = None,
    columns: int | None = 120,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m reasoncli ARGS`, output captured as text.

    stdin is `input`, or /dev/null for None: never the terminal. `columns` pins COLUMNS (None
    leaves it to the environment); `env` adds variables to this process's, None removing one.
    """
    full_env = dict(os.environ)
    if columns is not None:
        full_env["COLUMNS"] = str(columns)
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    return subprocess.run(
        [sys.executable, "-m", "reasoncli", *args],
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        text=True,
        capture_output=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )


def start(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m reasoncli ARGS` running, to read while it writes: stdout and stderr are text
    pipes, stdin is /dev/null; `env`, when given, is its whole environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "reasoncli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def interrupted_vote(model: Path) -> dict[str, Any]:
    """A long 4-branch `reason ask --jsonl` on `model`, Ctrl-C once a token is out: the last
    event it printed (the partial result), after checking that it exited 130."""
    return ctrl_c_after_a_token(
        start("ask", "q", "-m", str(model), "-n", "4", "--max-tokens", "4000", "--jsonl")
    )


def ctrl_c_after_a_token(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Ctrl-C to a run printing --jsonl once a token is out: the last event it printed, after
    checking that it exited 130."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line)["event"] == "token":
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read().splitlines()
    assert proc.wait(timeout=60) == 130
    return dict(json.loads(rest[-1]))
