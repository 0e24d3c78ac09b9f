"""Every `reason ...` command in the README and docs/ parses: its subcommands exist, its flags
exist and its values pass the CLI's own checks. Docs rot when a flag is renamed; this is the
test that notices, without running the commands (most load models or take minutes)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from reasoncli.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.S)
SEGMENT = re.compile(r"\|\||&&|\||;|\$\(")  # one shell line's commands
ASSIGNMENT = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$")  # `V="--verifier orm:x"` in a block


def doc_commands() -> Iterator[tuple[str, str]]:
    """(page, command line) for each `reason ...` command in a fenced block, continuation
    lines joined, pipes split (`echo q | reason ask --json | jq` yields `reason ask --json`)
    and the block's own shell variables put in, as the shell would."""
    for page in PAGES:
        for block in BLOCK.findall(page.read_text()):
            variables: dict[str, str] = {}
            for line in block.replace("\\\n", " ").splitlines():
                for segment in SEGMENT.split(line):
                    command = segment.strip().removeprefix("$ ").strip()
                    if match := ASSIGNMENT.match(command):
                        variables[match[1]] = " ".join(shlex.split(match[2], comments=True))
                    elif command.startswith("reason "):
                        for name, value in variables.items():
                            command = re.sub(rf"\$\{{?{name}\b\}}?", value, command)
                        yield page.name, command


def parse(args: list[str]) -> None:
    """Resolve the subcommands and parse the options as `reason` would, without running it."""
    command = typer.main.get_command(app)
    name, parent, rest = "reason", None, args
    while isinstance(command, TyperGroup):
        ctx = command.make_context(name, rest, parent=parent)
        todo = [*ctx._protected_args, *ctx.args]
        if not todo:
            return
        name, found, rest = command.resolve_command(ctx, todo)
        assert found is not None, f"no command {name!r}"
        command, parent = found, ctx
    command.make_context(name, rest, parent=parent)


COMMANDS = sorted(set(doc_commands()))


def test_the_docs_have_commands_to_check() -> None:
    pages = {page for page, _ in COMMANDS}
    assert {"README.md", "usage.md", "training.md"} <= pages and len(COMMANDS) > 50


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{c[7:50]}" for p, c in COMMANDS])
def test_every_documented_command_parses(page: str, command: str) -> None:
    try:
        parse(shlex.split(command, comments=True)[1:])
    except typer.Exit:  # --version, --help: eager options that end the parse, as they should
        pass


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("reason ask q --no-such-flag", "No such option"),
        ("reason bench run x.jsonl --branchez 3", "No such option"),
        ("reason ask q --branches 0", "must be at least 1"),
        ("reason trane grpo", "No such command"),
    ],
)
def test_a_stale_command_would_fail(command: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        parse(shlex.split(command)[1:])
