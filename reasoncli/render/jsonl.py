"""Events as JSON lines on a stream (`--jsonl`), for other programs to follow a run live."""

from __future__ import annotations

import json
from typing import IO

from reasoncli.events import Event
from reasoncli.results import Result

__all__ = ["JsonlWriter"]


class JsonlWriter:
    """One JSON object per line, flushed at once so a reader downstream of a pipe sees it now."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def handle(self, event: Event) -> None:
        self._write(event.to_json())

    def write_result(self, result: Result) -> None:
        """The final line: the whole result, tagged `"event": "result"` like the others."""
        self._write({"event": "result", **result.to_json()})

    def _write(self, data: dict[str, object]) -> None:
        self.stream.write(json.dumps(data, ensure_ascii=False) + "\n")
        self.stream.flush()
