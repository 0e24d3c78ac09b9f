"""The `reason` command in a child process (`reason`, `start`), as the tests that need a real
process run it, or in this process (`run_cli`) for the tests that check what it prints."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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


def wait_for_samples(
    proc: subprocess.Popen[str], path: Path, count: int, timeout: float = 90
) -> None:
    """Until the results file `path` holds `count` sample lines, or the process has ended: the
    moment to send a signal that must find saved work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().count('"type": "sample"') >= count:
            return
        time.sleep(0.005)


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


@dataclass
class Run:
    """What an in-process run of the CLI left: the fields of `subprocess.CompletedProcess`
    that the tests read, so one `assert` serves either runner."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str,
    input: str | None = "",
    env: Mapping[str, str | None] | None = None,
    columns: int | None = 120,
) -> Run:
    """The real `main()` (its error boundary and exit codes) in this process, on text buffers.

    The same arguments as `reason()`: stdin is `input` (None: empty, as /dev/null reads), none
    of the three streams is a TTY, `columns` pins COLUMNS, and `env` adds variables (None
    removes one) for the run only, in `os.environ` itself, since code below `cli/` reads it.
    What native code (llama.cpp) writes to file descriptors 1 and 2 is captured too and
    appended to `stdout`/`stderr`, so "nothing but the answer on stdout, nothing on stderr"
    holds in-process as it does in a child. For what needs a real process (the console script,
    pipes, signals, TTYs, crashes), use `reason()`.
    """
    from reasoncli.cli.app import main
    from reasoncli.cli.io import Environment

    changes: dict[str, str | None] = dict(env or {})
    if columns is not None:
        changes["COLUMNS"] = str(columns)
    out, err = io.StringIO(), io.StringIO()
    environment = Environment(
        stdin=io.StringIO(input or ""), stdout=out, stderr=err, owns_process=False
    )
    saved = dict(os.environ)
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        with _native_output(1) as native_out, _native_output(2) as native_err:
            try:
                main(list(args), env=environment)
            except SystemExit as exc:
                code = exc.code
            else:  # main() always ends in SystemExit
                raise AssertionError("main() returned without an exit code")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    stdout = out.getvalue() + native_out.read()
    stderr = err.getvalue() + native_err.read()
    return Run(list(args), returncode, stdout, stderr)


def one_error(proc: subprocess.CompletedProcess[str] | Run, code: int, needle: str) -> None:
    """The run failed as the error boundary fails a run: exit `code`, one `Error: ...` line on
    stderr that says `needle`, nothing on stdout."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert needle in lines[0]
    assert proc.stdout == ""


class _Captured:
    """What was written to a file descriptor while it was captured; read it after the block."""

    def __init__(self) -> None:
        self.text = ""

    def read(self) -> str:
        return self.text


@contextlib.contextmanager
def _native_output(fd: int) -> Iterator[_Captured]:
    """Point file descriptor `fd` at a temporary file for the block, then back."""
    captured = _Captured()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        try:
            yield captured
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            captured.text = tmp.read().decode(errors="replace")
