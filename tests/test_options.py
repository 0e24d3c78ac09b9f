"""The option declarations (`reasoncli.options`) and what is derived from them."""

from __future__ import annotations

import pytest

from reasoncli.errors import UsageError
from reasoncli.option_checks import check_options, read_number
from reasoncli.options import (
    AGGREGATES,
    DEFAULT_MAX_TOKENS,
    STOP_RULE_NAMES,
    EngineFlags,
    Range,
    SamplingOverrides,
    StrategyOptions,
    declared,
    every_option,
    labelled_options,
)


def test_choices_are_the_names_the_code_knows() -> None:
    from reasoncli.stopping import STOP_RULES
    from reasoncli.verifiers import aggregate_scores

    assert STOP_RULE_NAMES == tuple(STOP_RULES)
    for how in AGGREGATES:
        aggregate_scores([0.5], how)


def test_every_strategy_option_but_the_callers_own_is_declared() -> None:
    from dataclasses import fields

    names = {d.name for d in declared(StrategyOptions)}
    assert {f.name for f in fields(StrategyOptions)} - names == {"sampling", "max_tokens_explicit"}
    assert {d.name for d in declared(SamplingOverrides)} == {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
    }
    assert "threads" in {d.name for d in declared(EngineFlags)}
    assert len(every_option()) == len(names) + 4 + len(declared(EngineFlags))


def test_info_options_and_help_labels_come_from_the_declarations() -> None:
    from reasoncli.strategies.base import REGISTRY, load_builtin_strategies

    load_builtin_strategies()
    for name, cls in REGISTRY.items():
        takes = cls.info.options
        assert {"max_tokens", "seed"} <= set(takes), name
        assert all(every_option()[o].opt.commands for o in takes), name
    assert {"min_tokens", "max_waits", "wait_text", "answer_tokens"} <= set(
        REGISTRY["think"].info.options
    )
    assert "branches" not in REGISTRY["revise"].info.options
    for d in every_option().values():
        assert set(d.opt.strategies or ()) <= set(REGISTRY), d.name  # a misspelt strategy
    labels = labelled_options()
    assert labels["pilot"] == ("auto",) and "branches" not in labels
    assert "top_logprobs" not in labels  # no flag: serve's field only


@pytest.mark.parametrize(
    ("bounds", "said"),
    [
        (Range(1), "at least 1"),
        (Range(0, 1, low_open=True), "in (0, 1]"),
        (Range(0, 100, low_open=True), "in (0, 100]"),
        (Range(0, low_open=True, note="seconds"), "more than 0 seconds"),
        (Range(-1, note="(-1: every layer)"), "at least -1 (-1: every layer)"),
    ],
)
def test_range_words(bounds: Range, said: str) -> None:
    assert bounds.requirement == said


def test_a_number_flag_is_read_in_the_words_of_every_check() -> None:
    """What the CLI's number flags parse with, instead of typer's pydantic messages."""
    assert read_number("--branches", "3", int, Range(1)) == 3
    assert read_number("--queue-timeout", "0.5", float, Range(0)) == 0.5
    with pytest.raises(UsageError, match=r"^--branches must be at least 1, not 0$"):
        read_number("--branches", "0", int, Range(1))
    with pytest.raises(UsageError, match=r"^--port must be in \[0, 65535\], not 70000$"):
        read_number("--port", "70000", int, Range(0, 65535))
    with pytest.raises(UsageError, match=r"^--branches must be a whole number, not '1.5'$"):
        read_number("--branches", "1.5", int, Range(1))
    with pytest.raises(UsageError, match=r"^--timeout must be a number, not 'soon'$"):
        read_number("--timeout", "soon", float, Range(0))


def test_declared_ranges_and_choices_are_checked_for_every_strategy() -> None:
    with pytest.raises(UsageError, match=r"^--keep-percent must be in \(0, 100\], not 0$"):
        StrategyOptions(keep_percent=0).check()
    with pytest.raises(UsageError, match=r"^--stop-rule must be one of esc, beta, not 'x'$"):
        StrategyOptions(stop_rule="x").check()
    with pytest.raises(UsageError, match=r"^pick must be one of best, weighted"):
        check_options({"pick": "worst"}, names="field")
    with pytest.raises(UsageError, match="--min-tokens"):
        StrategyOptions(min_tokens=600).check()
    check_options({"pilot": 0}, only=("threads",))  # outside `only`: not checked
    StrategyOptions().check()


def test_given_keeps_defaults_for_none_and_says_whether_max_tokens_was_given() -> None:
    options = StrategyOptions.given(branches=4, max_tokens=None, expect=None)
    assert (options.branches, options.max_tokens) == (4, DEFAULT_MAX_TOKENS)
    assert options.max_tokens_explicit is False and options.expect is None
    assert StrategyOptions.given(max_tokens=64).max_tokens_explicit is True
    with pytest.raises(UsageError, match="unknown option 'brnaches'"):
        StrategyOptions.given(brnaches=4)
    assert SamplingOverrides(temperature=0.0).given() == {"temperature": 0.0}


def test_ask_think_and_bench_flags_are_made_from_the_declarations() -> None:
    import typer

    from reasoncli.cli.app import app

    root = typer.main.get_command(app)
    ask = {p.name: p for p in root.commands["ask"].params}  # type: ignore[attr-defined]
    think = {p.name: p for p in root.commands["think"].params}  # type: ignore[attr-defined]
    bench = {p.name: p for p in root.commands["bench"].commands["run"].params}  # type: ignore[attr-defined]
    for d in declared(StrategyOptions):
        assert (d.name in ask) == ("ask" in d.opt.commands), d.name
        assert (d.name in think) == ("think" in d.opt.commands), d.name
        own = {"branches", "max_tokens", "seed", "budget_tokens"}  # bench's grid and run flags
        assert (d.name in bench) == (bool(d.opt.bench) or d.name in own), d.name
    assert ask["pilot"].help == "(auto) Pilot branches that judge difficulty."
    assert ask["pilot"].default == 4 and ask["branches"].opts == ["--branches", "-n"]
    assert ask["max_tokens"].default is None and think["max_tokens"].default == 1024
    assert bench["beam_width"].default is None
    assert bench["beam_width"].help == "beam, dvts: beams kept per step [4]."
    for d in declared(SamplingOverrides):
        assert ask[d.name].help == think[d.name].help == d.opt.help


def test_strategy_flags_hand_the_command_one_dict_of_values() -> None:
    import typer
    from typer.testing import CliRunner

    from reasoncli.cli.flags import strategy_flags

    seen: dict[str, object] = {}
    app = typer.Typer()

    @app.command()
    @strategy_flags("ask")
    def command(*, options: dict[str, object]) -> None:
        seen.update(options)

    result = CliRunner().invoke(app, ["--pilot", "2", "--early-stop", "-n", "3"])
    assert result.exit_code == 0, result.output
    assert (seen["pilot"], seen["early_stop"], seen["branches"]) == (2, True, 3)
    assert seen["max_tokens"] is None  # not given: the strategy may choose (auto)
    assert StrategyOptions.given(**seen).max_tokens_explicit is False  # type: ignore[arg-type]


def test_the_typed_flag_aliases_take_the_declared_types() -> None:
    """The sampling and engine flags are aliases that spell their type for mypy; the type must
    be the one the declaration gives the flag."""
    import typing

    from reasoncli.cli import ask, bench
    from reasoncli.cli.flags import flag_type

    aliases = {
        "Temperature": "temperature",
        "TopP": "top_p",
        "TopK": "top_k",
        "MinP": "min_p",
        "Threads": "threads",
        "GpuLayers": "gpu_layers",
        "FlashAttn": "flash_attn",
        "Verbose": "verbose",
        "Backend": "backend",
        "BaseUrl": "base_url",
        "ApiKeyFile": "api_key_file",
        "MaxConcurrency": "max_concurrency",
        "Timeout": "timeout",
    }
    for alias, name in aliases.items():
        assert typing.get_args(getattr(ask, alias))[0] == flag_type(name), alias
    assert typing.get_args(bench.MaxTokensOpt)[0] == flag_type("max_tokens", command="bench")
    assert typing.get_args(bench.SeedOpt)[0] == flag_type("seed", command="bench")
    assert typing.get_args(bench.BranchList)[0] == flag_type("branches", command="bench", type=str)
