"""`reason models list|show|pull|rm`: what the registry knows, what is installed, and getting
GGUFs from the Hugging Face Hub.

The catalog (pydantic, PyYAML), huggingface_hub and Rich are imported inside the commands so
`reason --help` does not pay for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from reasoncli.cli.io import Terminal
    from reasoncli.models.catalog import Catalog
    from reasoncli.models.gguf_file import GGUFInfo
    from reasoncli.models.install import Installation
    from reasoncli.models.schema import ModelSpec

models_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="List, show, pull (from the Hugging Face Hub) and remove models.",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ResultJsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@dataclass(frozen=True)
class _Row:
    spec: ModelSpec
    inst: Installation
    info: GGUFInfo | None


def _rows(catalog: Catalog) -> list[_Row]:
    """Each entry with its install state and, when the file is there, its GGUF header (read
    without the weights: milliseconds per model)."""
    from reasoncli.errors import ModelError
    from reasoncli.models.gguf_file import read_gguf_info
    from reasoncli.models.install import check_installed

    rows = []
    for spec in catalog.specs():
        inst = check_installed(spec)
        info = None
        if inst.path is not None:
            try:
                info = read_gguf_info(inst.path)
            except ModelError:
                info = None
        rows.append(_Row(spec, inst, info))
    return rows


def _quant(row: _Row) -> str | None:
    from reasoncli.models.filenames import quant_from_filename

    if row.info is not None:
        return row.info.file_type or row.info.quant_type
    hf = row.spec.source.hf
    return quant_from_filename(hf.file) if hf is not None else None


def _context(row: _Row) -> int | None:
    if row.info is not None and row.info.context_length:
        return row.info.context_length
    return row.spec.n_ctx


@models_app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """List every registered model: installed or available to pull, size, quant, context."""
    from reasoncli.models.catalog import load_catalog

    catalog = load_catalog()
    rows = _rows(catalog)
    if as_json:
        out = [_list_json(row, catalog) for row in rows]
        typer.echo(json.dumps(out, indent=2))
        return

    console = _out_console()
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
            state, size = "yes", human_bytes(inst.size_bytes)
        else:
            state = "pull" if spec.source.hf is not None else "no"
            size = f"~{human_bytes(spec.download_size)}" if spec.download_size else "-"
        ctx = _context(row)
        think = spec.think_tags[0] if spec.think_tags else "-"
        facts = [name, state, size, _quant(row) or "-", str(ctx) if ctx else "-", spec.mode, think]
        about = spec.description
        if spec.aliases:
            about += f" (aliases: {', '.join(spec.aliases)})"
        entries.append((facts, about.strip()))
    for line in _list_lines(entries, console.width):
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
        out = _spec_json(spec, inst, catalog)
        out["gguf"] = _info_json(info, spec) if info is not None else None
        typer.echo(json.dumps(out, indent=2))
        return
    _render_show(spec, inst, info, catalog)


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
        for x in (human_bytes(result.size_bytes), result.info.file_type, check, how)
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
    freed = f", freed {human_bytes(result.freed_bytes)}" if result.freed_bytes else ""
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
            resumed = f", {human_bytes(done)} already here" if done else ""
            self.status(f"downloading {description} ({human_bytes(total)}{resumed})")
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


# --------------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------------


LIST_COLUMNS = ("name", "installed", "size", "quant", "ctx", "mode", "think")
RIGHT_ALIGNED = frozenset({"size", "ctx"})
DROPPABLE = ("mode",)  # dropped, in this order, when the facts would not fit the width
DESCRIPTION_INDENT = 4


def _list_lines(entries: list[tuple[list[str], str]], width: int) -> list[Any]:
    """`models list` as lines: one line of short facts per model in aligned columns, then its
    description and aliases wrapped underneath at the full width.

    A table column for the description was squeezed to a dozen characters at 120 columns
    (five to ten lines a model, aliases cut); on a line of its own it is whole at any width.
    """
    import textwrap

    from rich.text import Text

    columns = list(LIST_COLUMNS)

    def widths() -> list[int]:
        i = [LIST_COLUMNS.index(c) for c in columns]
        return [
            max(len(c), *(len(f[k]) for f, _ in entries)) for c, k in zip(columns, i, strict=True)
        ]

    for name in DROPPABLE:
        if sum(widths()) + 2 * (len(columns) - 1) <= width:
            break
        columns.remove(name)
    sizes = widths()
    keep = [LIST_COLUMNS.index(c) for c in columns]

    def line(cells: list[str]) -> str:
        out = [
            cell.rjust(w) if column in RIGHT_ALIGNED else cell.ljust(w)
            for cell, w, column in zip(cells, sizes, columns, strict=True)
        ]
        return "  ".join(out).rstrip()

    lines: list[Any] = [Text(line(list(columns)), style="bold")]
    indent = " " * DESCRIPTION_INDENT
    room = max(20, width - DESCRIPTION_INDENT)
    for facts, about in entries:
        lines.append(Text(line([facts[k] for k in keep])))
        for part in textwrap.wrap(about, room, break_on_hyphens=False):
            lines.append(Text(indent + part, style="dim"))
    return lines


def _out_console() -> Any:
    from reasoncli.cli.io import Terminal

    return Terminal().out_console()


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 10 * scale else f"{n / scale:.0f} {unit}"
    return f"{n} B"


def human_count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def chat_template_family(template: str | None) -> str:
    """A recognisable name for common templates, so users can tell what the prompt looks like."""
    if not template:
        return "none"
    for marker, family in (
        ("<|im_start|>", "ChatML"),
        ("<start_of_turn>", "Gemma"),
        ("<|start_header_id|>", "Llama 3"),
        ("[INST]", "Mistral/Llama 2"),
        ("<|user|>", "Zephyr/Phi"),
    ):
        if marker in template:
            return family
    return "custom"


def _spec_json(spec: ModelSpec, inst: Installation, catalog: Catalog) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    data["source"] = spec.source.model_dump(mode="json", exclude_none=True)
    data.update(
        default=spec.name == catalog.default.name,
        installed=inst.installed,
        path=str(inst.path) if inst.path else None,
        size_bytes=inst.size_bytes,
        detail=inst.detail or None,
        origin=catalog.origin(spec.name),
    )
    return data


def _list_json(row: _Row, catalog: Catalog) -> dict[str, Any]:
    data = _spec_json(row.spec, row.inst, catalog)
    info = row.info
    data.update(
        quant=_quant(row),
        context_length=_context(row),
        architecture=info.architecture if info else None,
        parameter_count=info.parameter_count if info else None,
        has_chat_template=info.has_chat_template if info else None,
    )
    return data


def _info_json(info: GGUFInfo, spec: ModelSpec) -> dict[str, Any]:
    from dataclasses import asdict

    from reasoncli.models.gguf_file import kv_bytes_per_token

    data = {k: v for k, v in asdict(info).items() if k != "metadata"}
    data["path"] = str(info.path)
    data.update(
        has_chat_template=info.has_chat_template,
        chat_template_family=chat_template_family(info.chat_template),
        head_dim=info.head_dim,
        kv_bytes_per_token=kv_bytes_per_token(info),
    )
    return data


def _render_show(
    spec: ModelSpec, inst: Installation, info: GGUFInfo | None, catalog: Catalog
) -> None:
    from rich.table import Table
    from rich.text import Text

    from reasoncli.models.gguf_file import kv_bytes_per_token

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(key: str, value: object) -> None:
        grid.add_row(Text(key), Text(str(value)))

    default = "  (default)" if spec.name == catalog.default.name else ""
    row("name", spec.name + default)
    if spec.aliases:
        row("aliases", ", ".join(spec.aliases))
    if spec.description:
        row("description", spec.description)
    row("source", spec.source.describe())
    hf = spec.source.hf
    if hf is not None and hf.sha256:
        row("sha256", hf.sha256)
    if inst.installed and inst.path is None:
        row("remote", inst.detail)
    elif inst.installed:
        row("file", f"{inst.path}  ({human_bytes(inst.size_bytes)})")
    else:
        row("installed", f"no: {inst.detail}")
        if spec.download_size:
            row("download", f"about {human_bytes(spec.download_size)}")
    if not spec.verified:
        row("verified", "no: repo, file, size and settings come from the model cards")
    origin = catalog.origin(spec.name)
    if origin.endswith("pulled.yaml"):
        row("registered in", origin)
    row("mode", spec.mode)
    row("n_ctx", spec.n_ctx or "from the GGUF")
    if spec.chat_template:
        row("chat template", f"override, {len(spec.chat_template)} chars")
    if spec.prompt_template:
        lines = spec.prompt_template.splitlines()
        row("prompt template", f"{len(lines)} lines, ends {lines[-1]!r}")
    if spec.stop:
        row("stop", ", ".join(json.dumps(s) for s in spec.stop))
    if spec.think_tags:
        row("think tags", " ... ".join(spec.think_tags))
    s = spec.sampling
    row(
        "sampling",
        f"temperature {s.temperature}, top_p {s.top_p}, top_k {s.top_k}, min_p {s.min_p}, "
        f"repeat_penalty {s.repeat_penalty}",
    )
    if spec.extra:
        row("pip extra", spec.extra)
    if info is not None:
        row("", "")
        row("architecture", info.architecture)
        if info.name:
            row("gguf name", info.name)
        row("parameters", f"{human_count(info.parameter_count)} ({info.tensor_count} tensors)")
        row("quantization", f"{info.file_type or '?'} (most bytes: {info.quant_type})")
        row("trained context", info.context_length or "?")
        row("layers", info.block_count or "?")
        row("embedding", info.embedding_length or "?")
        row(
            "heads",
            f"{info.head_count or '?'} (kv {info.head_count_kv or '?'}), "
            f"head dim {info.head_dim or '?'}",
        )
        row("vocabulary", info.vocab_size or "?")
        row("chat template", chat_template_family(info.chat_template))
        kv = kv_bytes_per_token(info)
        if kv:
            ctx = spec.n_ctx or info.context_length
            at_ctx = f", {human_bytes(kv * ctx)} at n_ctx {ctx}" if ctx else ""
            row("KV cache (f16)", f"{kv / 1024:.1f} KiB/token{at_ctx}")
    elif inst.installed and inst.detail:
        row("gguf", inst.detail)
    _out_console().print(grid)
