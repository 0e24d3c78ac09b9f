"""schemathesis against a real `reason serve` on loopback, from the /openapi.json it publishes.

Valid and invalid requests (wrong types, extremes, NaN-free junk, missing fields, extra keys) go
to every operation; each response must be no 5xx, a status code the document lists, with the
content type, headers (Retry-After on 429/503) and body schema it declares. Bounded: derandomized
hypothesis, REASON_FUZZ_EXAMPLES (75) valid and 75 invalid bodies per POST route and a few GETs,
on the tiny model with small limits: a few minutes on 2 cores.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_serve import ServeProcess  # noqa: E402

EXAMPLES = int(os.environ.get("REASON_FUZZ_EXAMPLES", "75"))
OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/models"),
    ("GET", "/health"),
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
STATUSES: Counter[tuple[str, str, int]] = Counter()


@pytest.fixture(scope="module")
def fuzz_server(tiny_gguf: Path) -> Iterator[ServeProcess]:
    s = ServeProcess(
        tiny_gguf,
        *("--max-branches", "4", "--ctx", "384", "--max-request-tokens", "1024"),
        *("--max-n", "2", "--max-requests", "4", "--queue-timeout", "30"),
        api_key=None,
    )
    yield s
    assert s.stop() == 0
    assert not [line for line in s.stderr_lines if "Traceback" in line]
    total = sum(STATUSES.values())
    for route in ("/v1/chat/completions", "/v1/completions"):  # the 200 schemas were exercised
        assert STATUSES[(f"POST {route}", "positive", 200)] > 0, STATUSES
    lines = [f"  {op} {mode} {code}: {n}" for (op, mode, code), n in sorted(STATUSES.items())]
    print(f"\nfuzz: {total} cases\n" + "\n".join(lines), file=sys.stderr)


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServeProcess) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


def _ends_with_the_question(case: Any) -> Any:
    """A valid chat ends with the user's turn, a rule the schema can only state in words."""
    if isinstance(case.body, dict) and isinstance(case.body.get("messages"), list):
        case.body["messages"][-1]["role"] = "user"
    return case


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_response_matches_the_published_schema(
    api_schema: Any, fuzz_server: ServeProcess, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    if mode is GenerationMode.NEGATIVE and method == "GET":
        pytest.skip("a GET without parameters has nothing to make invalid")
    label = f"{method} {path}"
    strategy = operation.as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE and path == "/v1/chat/completions":
        strategy = strategy.map(_ends_with_the_question)

    # derandomize: the same cases every run; no shrinking, so a failure costs no extra minutes
    # (the first failing case is reported as it was sent).
    @settings(
        max_examples=EXAMPLES if method == "POST" else 5,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        response = case.call(base_url=fuzz_server.url, timeout=120)
        STATUSES[(label, mode.value, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    check()
