"""`reason serve` started for a benchmark: a free loopback port, and the address it prints."""

from __future__ import annotations

import re
import subprocess
import sys
import threading


def spawn(serve_args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`python -m reasoncli serve --host 127.0.0.1 --port 0 SERVE_ARGS...`, and its base URL
    (`http://127.0.0.1:PORT`, without `/v1`) once its first stderr line names it. The rest of
    its stderr is drained from then on, so a long run never blocks on a full pipe."""
    cmd = [sys.executable, "-m", "reasoncli", "serve", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen([*cmd, *serve_args], stderr=subprocess.PIPE, text=True, env=env)
    stderr = proc.stderr
    assert stderr is not None
    line = stderr.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
    if not m:
        proc.kill()
        raise SystemExit(f"server did not start: {line}{stderr.read()}")
    threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
    return proc, f"http://127.0.0.1:{m.group(1)}"
