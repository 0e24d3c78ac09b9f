"""`reason models list|show|pull|rm`: what the registry knows, what is installed, and getting
GGUFs from the Hugging Face Hub.

The catalog (pydantic, PyYAML), huggingface_hub and Rich are imported inside the commands so
`reason --help` does not pay for them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reasoncli.cli import models_view as view

if TYPE_CHECKING:
    from reasoncli.cli.io import Terminal
    from reasoncli.models.gguf_file import GGUFInfo

models_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="List, show, pull (from the Hugging Face Hub) and remove models.",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ResultJsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@models_app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """List every registered model: installed or available to pull, size, quant, context."""
    from reasoncli.models.catalog import load_catalog

    catalog = load_catalog()
    rows = view.rows(catalog)
    if as_json:
        out = [view.list_json(row, catalog) for row in rows]
        typer.echo(json.dumps(out, indent=2))
        return

    console = view.out_console()
    entries: list[tuple[list[str], str]] = []
    unverified = False
    for row in rows:
        spec, inst = row.spec, row.inst
        name = spec.name
        if spec.name == catalog.default.name:
            name += " *"
        if not spec.verified:
            name += " ?"
            unverified = True
        if inst.installed:
            state, size = "yes", view.human_bytes(inst.size_bytes)
        else:
            state = "pull" if spec.source.hf is not None else "no"
            size = f"~{view.human_bytes(spec.download_size)}" if spec.download_size else "-"
        ctx = view.context(row)
        think = spec.think_tags[0] if spec.think_tags else "-"
        quant = view.quant(row) or "-"
        facts = [name, state, size, quant, str(ctx) if ctx else "-", spec.mode, think]
        about = spec.description
        if spec.aliases:
            about += f" (aliases: {', '.join(spec.aliases)})"
        entries.append((facts, about.strip()))
    for line in view.list_lines(entries, console.width):
        console.print(line)
    console.print("* default model", markup=False)
    if unverified:
        console.print(
            "? not verified against the Hub: repo, file and size come from the model cards",
            markup=False,
        )
    if any(not r.inst.installed and r.spec.source.hf is not None for r in rows):
        console.print("pull: `reason models pull NAME` downloads it", markup=False)
    for row in rows:
        if not row.inst.installed and row.spec.source.hf is None:
            console.print(f"not installed: {row.inst.detail}", markup=False)


@models_app.command("show")
def show_model(
    name: Annotated[str, typer.Argument(help="Model name, alias, or path to a .gguf file.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a model's registry entry and, when installed, what its GGUF header says."""
    from reasoncli.errors import ModelError
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.gguf_file import read_gguf_info
    from reasoncli.models.install import Installation, check_installed, resolve_spec
    from reasoncli.models.resolve import resolve_model

    catalog = load_catalog()
    spec = catalog.find(name)
    info: GGUFInfo | None = None
    if spec is None:  # a path (ad-hoc GGUF), or an unknown name -> ModelError with suggestions
        resolved = resolve_model(name, catalog)
        spec, info = resolved.spec, resolved.info
        inst = Installation(True, resolved.path, resolved.path.stat().st_size, "")
    elif spec.source.openai is not None:
        inst = check_installed(spec)
    else:
        try:
            path = resolve_spec(spec)  # may assemble a chunked package once
        except ModelError as exc:
            inst = Installation(False, None, None, str(exc))
        else:
            inst = Installation(True, path, path.stat().st_size, "")
            try:
                info = read_gguf_info(path)
            except ModelError as exc:
                inst = Installation(True, path, inst.size_bytes, str(exc))

    if as_json:
        out = view.spec_json(spec, inst, catalog)
        out["gguf"] = view.info_json(info, spec) if info is not None else None
        typer.echo(json.dumps(out, indent=2))
        return
    view.render_show(spec, inst, info, catalog)


@models_app.command("pull")
def pull_model(
    target: Annotated[
        str,
        typer.Argument(
            help="A name from `reason models list`, or owner/repo[:QUANT] on the Hugging Face "
            "Hub (QUANT like Q4_K_M, or a file name)."
        ),
    ],
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="Branch, tag or commit (default: main, or the pin)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Registry name for an owner/repo:QUANT pull (default: the file name)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if the file is installed.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    as_json: ResultJsonOpt = False,
) -> None:
    """Download a GGUF from the Hugging Face Hub, check it (size, sha256, GGUF header) and
    register it so `--model NAME` finds it. An interrupted pull resumes when run again."""
    from reasoncli.cli.io import Terminal
    from reasoncli.hub.pull import pull

    term = Terminal()
    # --json keeps a non-terminal stderr clean too; a terminal still gets its progress bar.
    reporter = _RichReporter(term, quiet or (as_json and not term.stderr_is_tty))
    try:
        result = pull(target, revision=revision, name=name, force=force, reporter=reporter)
    except KeyboardInterrupt:
        reporter.download_finished()
        reporter.status("interrupted: run the same command again to resume")
        raise
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    check = "sha256 verified" if result.sha256_checked else "no sha256 from the Hub"
    how = {"present": "already installed", "hf-cache": "from the HF cache"}.get(result.origin)
    details = ", ".join(
        x
        for x in (view.human_bytes(result.size_bytes), result.info.file_type, check, how)
        if x is not None
    )
    typer.echo(f"{result.name}: {result.path} ({details})")


@models_app.command("rm")
def remove_model(
    name: Annotated[str, typer.Argument(help="A pulled model's name (or owner/repo:QUANT).")],
    as_json: ResultJsonOpt = False,
) -> None:
    """Delete a pulled model's file and its registration (curated entries stay listed)."""
    from reasoncli.hub.remove import remove

    result = remove(name)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    freed = f", freed {view.human_bytes(result.freed_bytes)}" if result.freed_bytes else ""
    typer.echo(f"removed {result.name}{freed}")


class _RichReporter:
    """Pull progress on stderr: a Rich bar on a terminal, plain lines otherwise (logs, CI)."""

    def __init__(self, term: Terminal, quiet: bool) -> None:
        self.console = term.err_console()
        self.tty = term.stderr_is_tty
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None

    def status(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, highlight=False, style="dim")

    def download_started(self, description: str, total: int | None, done: int) -> None:
        if self.quiet:
            return
        if not self.tty:
            resumed = f", {view.human_bytes(done)} already here" if done else ""
            self.status(f"downloading {description} ({view.human_bytes(total)}{resumed})")
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, completed=done)

    def downloaded(self, n_bytes: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n_bytes)

    def download_finished(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
