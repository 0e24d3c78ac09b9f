"""Help, option checks, --version and completion, on the real CLI in-process (`run_cli`: the
same `main()`, error boundary and exit codes as the `reason` script).

None of these load a model: option checks must refuse a run before the model is even looked
up, so every run below names a model file that does not exist.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from typing import Any

import pytest
from cli_run import Run, run_cli

from reasoncli import __version__
from reasoncli.errors import UsageError
from reasoncli.option_checks import check_options
from reasoncli.options import labelled_options

NO_MODEL = "/nonexistent/model.gguf"  # a run that got past the checks would exit 3 on this


def reason(*args: str, env: dict[str, str] | None = None) -> Run:
    return run_cli(*args, env=env, columns=100)


@pytest.mark.parametrize(
    ("command", "flags", "named"),
    [
        ("ask", ["--threads", "-3"], "--threads"),
        ("ask", ["--threads", "0"], "--threads"),
        ("ask", ["--gpu-layers", "-5"], "--gpu-layers"),
        ("ask", ["--top-p", "5"], "--top-p"),
        ("ask", ["--top-p", "0"], "--top-p"),
        ("ask", ["--top-k", "-3"], "--top-k"),
        ("ask", ["-t", "-0.5"], "--temperature"),
        ("ask", ["--temperature", "nan"], "--temperature"),
        ("ask", ["--min-p", "1.5"], "--min-p"),
        ("ask", ["--json", "--jsonl"], "--json and --jsonl"),
        ("ask", ["--max-concurrency", "0"], "--max-concurrency"),
        ("think", ["--threads", "-1"], "--threads"),
        ("think", ["--top-k", "-1"], "--top-k"),
        ("think", ["--json", "--jsonl"], "--json and --jsonl"),
    ],
)
def test_impossible_options_are_one_line_usage_errors(
    command: str, flags: list[str], named: str
) -> None:
    proc = reason(command, "q", "-m", NO_MODEL, *flags)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {named}"), proc.stderr


def test_values_at_the_edges_pass_the_checks() -> None:
    """-1 layers (all), top-k 0 (off), temperature 0 (greedy), top-p 1, min-p 0 are valid:
    the run goes on to look for the model and fails there (exit 3), not on the options."""
    proc = reason(
        "ask", "q", "-m", NO_MODEL, "--gpu-layers", "-1", "--top-k", "0", "-t", "0",
        "--top-p", "1", "--min-p", "0", "--threads", "1",
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr


def test_check_options_words_api_fields_for_serve() -> None:
    """The same checks, called as `reason serve` calls them on a request's sampling fields."""
    with pytest.raises(UsageError, match=r"^top_p must be in \(0, 1\], not 5$"):
        check_options({"temperature": 0.7, "top_p": 5.0}, names="field")
    with pytest.raises(UsageError, match=r"^top_k must be a number"):
        check_options({"top_k": "many"}, names="field")
    check_options({"temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0}, names="field")
    check_options({"threads": None, "question": "not an option"})  # unknown keys are skipped


def _sections(help_text: str) -> dict[str, str]:
    """`Title:` headings at column 0 -> the text under them."""
    parts = re.split(r"^(\S[^\n]*):\n", help_text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_ask_help_groups_options_labels_strategies_and_shows_examples() -> None:
    proc = reason("ask", "--help")
    assert proc.returncode == 0, proc.stderr
    sections = _sections(proc.stdout)
    for title in (
        "Question and strategy",
        "Sampling (defaults: the model's models.yaml entry)",
        "Output",
        "Voting and early stopping",
        "Verifiers and search",
        "Budgets",
        "Local engine (llama.cpp)",
        "Remote server (OpenAI-compatible)",
    ):
        assert title in sections, f"no {title!r} section in:\n{proc.stdout}"
    assert "--pilot" in sections["Budgets"] and "--pilot" not in sections["Question and strategy"]
    flat = " ".join(proc.stdout.split())
    assert "--keep-percent X (weighted-vote) Keep" in flat
    assert "--pilot N (auto) Pilot" in flat
    examples = [line.strip() for line in proc.stdout.split("Examples:")[1].splitlines()]
    examples = [line for line in examples if line.startswith("reason ask")]
    assert 3 <= len(examples) <= 5


def _root() -> Any:
    import typer

    from reasoncli.cli.app import app

    return typer.main.get_command(app)


TOP_COMMANDS = sorted(_root().commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", TOP_COMMANDS)
def test_every_command_shows_examples_that_use_only_real_flags(command: str) -> None:
    """3-5 examples under each command; one that drifted from the options would teach a
    usage error, so each is resolved to its (sub)command and its flags looked up."""
    help_text = reason(command, "--help").stdout
    assert "Examples:" in help_text, command
    examples = [line.strip() for line in help_text.split("Examples:")[1].splitlines()]
    examples = [line for line in examples if line]
    assert 3 <= len(examples) <= 5, examples
    for line in examples:
        for segment in line.split("|"):
            words = shlex.split(segment)
            if not words or words[0] != "reason":
                continue
            target, rest = _root(), words[1:]
            while rest and rest[0] in getattr(target, "commands", {}):
                target, rest = target.commands[rest[0]], rest[1:]
            known = {o for p in target.params for o in (*p.opts, *p.secondary_opts)}
            flags = {w for w in rest if w.startswith("-") and not w.lstrip("-")[:1].isdigit()}
            assert flags <= known, f"{line}: {sorted(flags - known)} unknown"
        assert line.startswith("reason ") or "| reason " in line, line


def test_think_help_keeps_revise_options_apart() -> None:
    sections = _sections(reason("think", "--help").stdout.split("Examples:")[0])
    revise = sections["Self-revision (--strategy revise)"]
    assert "--rounds" in revise and "--final" in revise
    others = "".join(v for k, v in sections.items() if not k.startswith("Self-revision"))
    assert "--rounds" not in others and "--final" not in others
    assert "--min-tokens N (think)" in " ".join(sections["Thinking budget"].split())


def test_help_labels_are_the_registry() -> None:
    """`--help` labels an option with the strategies its declaration names, without importing
    them; each is a registered strategy whose `info.options` lists the option."""
    from reasoncli.strategies.base import REGISTRY, load_builtin_strategies

    load_builtin_strategies()
    for field, labelled in labelled_options().items():
        readers = {name for name, cls in REGISTRY.items() if field in cls.info.options}
        assert set(labelled) == readers, field


def test_version() -> None:
    proc = reason("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"reason {__version__} (llama-cpp-python ")
    assert proc.stderr == ""


def _complete(words: str) -> list[str]:
    """What bash completion offers for `words` (the last one being completed)."""
    parts = words.split(" ")
    proc = reason(
        env={
            "_REASON_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
        }
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_of_models_and_strategies_from_the_registries() -> None:
    from reasoncli.models.catalog import load_catalog
    from reasoncli.strategies.base import REGISTRY, Kind, load_builtin_strategies

    catalog = load_catalog()
    expected = sorted(n for s in catalog for n in (s.name, *s.aliases) if n.startswith("qwen"))
    assert expected and sorted(_complete("reason ask --model qwen")) == expected
    load_builtin_strategies()
    assert sorted(_complete("reason ask -s ")) == sorted(REGISTRY)
    assert sorted(_complete("reason ask --strategy b")) == ["beam", "best-of-n"]
    serial = sorted(n for n, c in REGISTRY.items() if c.info.kind is Kind.SERIAL)
    assert sorted(_complete("reason think -s ")) == serial


def test_completion_scripts_install_and_show() -> None:
    proc = reason("--show-completion", "bash")
    assert proc.returncode == 0, proc.stderr
    assert "_REASON_COMPLETE=complete_bash" in proc.stdout
    help_text = reason("--help").stdout
    assert "--install-completion" in help_text and "--version" in help_text


def test_help_loads_no_heavy_library() -> None:
    """`reason --help` stays fast: numpy, llama.cpp, the HTTP stack and torch load only when a
    command needs them (a module-level `import numpy` in the sampling settings once added
    65 ms)."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['reason', '--help']\n"
        "try:\n"
        "    runpy.run_module('reasoncli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('numpy', 'llama_cpp', 'httpx2', 'fastapi', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "Usage" in done.stdout  # the help did run
    assert done.stderr.strip().splitlines()[-1] == "[]"
