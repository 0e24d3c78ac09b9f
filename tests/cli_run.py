"""The `reason` command in a child process, as the tests that need a real process run it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


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
