"""`reason serve`'s request parsing, without a model: every value a client can send is either a
run within the server's limits or a UsageError (HTTP 400) that names the field and the range."""

from __future__ import annotations

from typing import Any

import pytest

from reasoncli.errors import UsageError
from reasoncli.serve.request import Limits, parse_run, planned_tokens

LIMITS = Limits(max_n=4, max_request_branches=8, max_tokens_per_branch=512, max_request_tokens=2048)


def parse(body: dict[str, Any]) -> Any:
    return parse_run(
        {"model": "tiny", **body},
        served="tiny",
        defaults={"strategy": "vote", "branches": 2},
        limits=LIMITS,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"reason": {"min_tokens": None}}, "reason.min_tokens must be int, not null"),
        ({"reason": {"branches": 99}}, "reason.branches must be an integer from 1 to 8, not 99"),
        ({"reason": {"branches": 0}}, "from 1 to 8, not 0"),
        ({"max_tokens": -1}, "max_tokens must be an integer from 1 to 512, not -1"),
        ({"max_tokens": 0}, "from 1 to 512, not 0"),
        ({"max_tokens": 10**30}, "from 1 to 512"),
        ({"max_tokens": 8.5}, "max_tokens must be int, not float"),
        ({"max_tokens": 1e9}, "max_tokens must be an integer from 1 to 512, not 1000000000"),
        ({"max_completion_tokens": "8"}, "max_tokens must be int, not a string"),
        ({"temperature": float("nan")}, "temperature must be a finite number, not nan"),
        ({"temperature": float("inf")}, "finite"),
        ({"temperature": -1}, "temperature must be at least 0"),
        ({"top_p": 5}, "top_p must be in (0, 1], not 5"),
        ({"reason": {"top_k": -3}}, "reason.top_k must be an integer from 0"),
        ({"reason": {"min_p": 2.0}}, "min_p must be in [0, 1]"),
        ({"reason": {"keep_percent": float("inf")}}, "reason.keep_percent must be a finite"),
        ({"reason": {"window": [1]}}, "reason.window must be int, not an array"),
        ({"reason": {"early_stop": "yes"}}, "reason.early_stop must be true or false"),
        ({"reason": {"wait_text": "x" * 5000}}, "at most 1000 characters"),
        ({"reason": {"rounds": 10**6, "strategy": "revise"}}, "from 1 to 16"),
        ({"seed": -1}, "seed must be an integer from 0"),
        ({"reason": []}, "'reason' must be an object"),
        ({"n": 5}, "'n' must be an integer from 1 to 4"),
        ({"n": True}, "'n' must be an integer"),
        ({"n": 3, "reason": {"branches": 4}}, "n (3) x branches (4) is 12"),
        ({"model": "vote-0-tiny"}, "branches (in the model name) must be an integer from 1"),
        ({"model": "vote-8-tiny", "max_tokens": 512}, "may generate 4096 tokens"),
        ({"n": 4, "max_tokens": 300}, "may generate 2400 tokens"),
        ({"stream": "yes"}, "'stream' must be true or false"),
        ({"stream_options": 3}, "'stream_options' must be an object"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(body)
    assert message in str(err.value)


def test_values_within_the_limits_build_the_run() -> None:
    spec = parse(
        {
            "model": "vote-4-tiny",
            "max_tokens": 256.0,  # an integer in JSON Schema's terms
            "n": 2,
            "seed": 7,
            "temperature": 0.5,
            "stream": None,
            "reason": {"top_k": 20, "expect": None},
        }
    )
    assert (spec.strategy, spec.options.branches, spec.options.max_tokens, spec.n) == (
        "vote",
        4,
        256,
        2,
    )
    assert spec.sampling == {"temperature": 0.5, "top_k": 20} and spec.options.seed == 7
    assert spec.stream is False


def test_the_planned_tokens_follow_each_strategys_shape() -> None:
    spec = parse({"max_tokens": 100, "reason": {"strategy": "revise", "rounds": 3}})
    assert planned_tokens("revise", spec.options) == 300
    spec = parse({"max_tokens": 100, "reason": {"strategy": "think", "answer_tokens": 50}})
    assert planned_tokens("think", spec.options) == 150
    spec = parse({"max_tokens": 100, "reason": {"branches": 5}})
    assert planned_tokens("vote", spec.options) == 500


def test_limits_are_reported_as_plain_numbers() -> None:
    assert LIMITS.to_json() == {
        "max_body_bytes": 1 << 20,
        "max_n": 4,
        "max_request_branches": 8,
        "max_tokens_per_branch": 512,
        "max_request_tokens": 2048,
    }


def test_defaults_counted_in_branches_follow_a_smaller_request() -> None:
    spec = parse({"model": "weighted-vote-2-tiny"})
    assert spec.options.warmup == 2  # not the CLI's 4, which a 2-branch request never asked for
    spec = parse({"model": "beam-2-tiny", "reason": {"beam_width": 1}})
    assert spec.options.beam_width == 1
    with pytest.raises(UsageError, match="--warmup \\(3\\) is larger than --branches \\(2\\)"):
        parse({"model": "weighted-vote-2-tiny", "reason": {"warmup": 3}})


def test_without_max_tokens_a_small_context_gets_half_of_it() -> None:
    spec = parse({})
    assert spec.options.max_tokens == 256 and not spec.options.max_tokens_explicit
    wide = parse_run({"model": "tiny"}, served="tiny", defaults={"branches": 2}, limits=Limits())
    assert wide.options.max_tokens == 512  # the CLI's default, where --ctx has room for it
