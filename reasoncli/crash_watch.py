"""One line on stderr when llama.cpp kills the process, instead of a bare "Segmentation fault".

A process that dies from SIGSEGV or SIGABRT cannot report it itself, so the first model load of
a CLI run starts a small watcher process and points `faulthandler` at a pipe to it. When the
pipe closes, the watcher reads what came through: nothing on a normal exit, a kill or a Ctrl-C;
faulthandler's report on a fatal signal. Then it prints one line naming the signal and what to
try, and keeps the full report in a crash log. The watcher starts with the model, not with the
CLI, so `reason --help` pays nothing; starting it costs the parent about a millisecond.
"""

from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

from reasoncli.paths import cache_home

HINT = (
    "try `reason --cpu-extra-buffers off ...` (or REASON_CPU_EXTRA_BUFFERS=off), "
    "and `reason doctor` to see what the CPU backend uses"
)

# Runs in the watcher with `python -I -S -c`: the standard library only, no reasoncli import.
_WATCHER = r"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
fd, log, hint = int(sys.argv[1]), sys.argv[2], sys.argv[3]
chunks = []
while True:
    try:
        data = os.read(fd, 65536)
    except InterruptedError:
        continue
    if not data:
        break
    chunks.append(data)
text = b"".join(chunks).decode("utf-8", "replace")
if "Fatal Python error" in text:
    # Two threads can fault at once; the second kills the process mid-report, so the signal's
    # name may be missing.
    first = text.strip().splitlines()[0]
    what = first.split(":", 1)[1].strip() or "a fatal signal"
    where = ""
    for line in text.splitlines():
        if line.strip().startswith("File ") and "reasoncli" in line:
            where = line.strip().split('"')[1].split("reasoncli/")[-1]
            where = " in reasoncli/" + where + ", line " + line.rsplit("line", 1)[-1].split()[0]
            break
    try:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "w") as f:
            f.write(text)
        saved = f" (report: {log})"
    except OSError:
        saved = ""
    msg = f"Error: llama.cpp crashed the process ({what}{where}); {hint}{saved}\n"
    try:
        os.write(2, msg.encode())
    except OSError:
        pass
"""

_report: IO[str] | None = None  # the pipe's write end; kept open for the life of the process
_watcher: subprocess.Popen[bytes] | None = None
_armed = False


def arm() -> None:
    """Called by the CLI: watch for native crashes once a model is about to load."""
    global _armed
    _armed = True


def crash_log() -> Path:
    return cache_home() / "last-crash.txt"


def start() -> bool:
    """Start the watcher if the CLI armed it and it is not running; True when it runs."""
    global _report, _watcher
    if not _armed or _report is not None:
        return _report is not None
    read_end, write_end = os.pipe()
    try:
        _watcher = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHER, str(read_end), str(crash_log()), HINT],
            pass_fds=(read_end,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
    except OSError:
        os.close(write_end)
        return False
    finally:
        os.close(read_end)
    _report = os.fdopen(write_end, "w")
    faulthandler.enable(file=_report, all_threads=True)
    return True
