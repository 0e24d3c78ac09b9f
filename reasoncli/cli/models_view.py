"""What `reason models list` and `show` print: the rows, their columns fitted to the terminal,
the JSON forms, and the human-readable sizes. The commands are in cli/models.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reasoncli.models.catalog import Catalog
    from reasoncli.models.gguf_file import GGUFInfo
    from reasoncli.models.install import Installation
    from reasoncli.models.schema import ModelSpec


@dataclass(frozen=True)
class Row:
    spec: ModelSpec
    inst: Installation
    info: GGUFInfo | None


def rows(catalog: Catalog) -> list[Row]:
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
        rows.append(Row(spec, inst, info))
    return rows


def quant(row: Row) -> str | None:
    from reasoncli.models.filenames import quant_from_filename

    if row.info is not None:
        return row.info.file_type or row.info.quant_type
    hf = row.spec.source.hf
    return quant_from_filename(hf.file) if hf is not None else None


def context(row: Row) -> int | None:
    if row.info is not None and row.info.context_length:
        return row.info.context_length
    return row.spec.n_ctx


LIST_COLUMNS = ("name", "installed", "size", "quant", "ctx", "mode", "think")
RIGHT_ALIGNED = frozenset({"size", "ctx"})
DROPPABLE = ("mode",)  # dropped, in this order, when the facts would not fit the width
DESCRIPTION_INDENT = 4


def list_lines(entries: list[tuple[list[str], str]], width: int) -> list[Any]:
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


def out_console() -> Any:
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


def spec_json(spec: ModelSpec, inst: Installation, catalog: Catalog) -> dict[str, Any]:
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


def list_json(row: Row, catalog: Catalog) -> dict[str, Any]:
    data = spec_json(row.spec, row.inst, catalog)
    info = row.info
    data.update(
        quant=quant(row),
        context_length=context(row),
        architecture=info.architecture if info else None,
        parameter_count=info.parameter_count if info else None,
        has_chat_template=info.has_chat_template if info else None,
    )
    return data


def info_json(info: GGUFInfo, spec: ModelSpec) -> dict[str, Any]:
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


def render_show(
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
    out_console().print(grid)
