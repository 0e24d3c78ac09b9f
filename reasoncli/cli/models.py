"""`reason models list|show`: what the registry knows and what is installed.

The catalog (pydantic, PyYAML) and Rich are imported inside the commands so `reason --help`
does not pay for them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from reasoncli.catalog import Catalog, GGUFInfo, Installation, ModelSpec

models_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="List the registered models (models.yaml) and show one in detail.",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@models_app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """List every registered model and whether its file is installed."""
    from reasoncli.catalog import check_installed, load_catalog

    catalog = load_catalog()
    rows = [(spec, check_installed(spec)) for spec in catalog.specs()]
    if as_json:
        out = [_spec_json(spec, inst, catalog) for spec, inst in rows]
        typer.echo(json.dumps(out, indent=2))
        return

    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _out_console()
    # Below ~100 columns the description would be squeezed into a sliver; --json always has it.
    wide = console.width >= 100
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("name", no_wrap=True)
    table.add_column("aliases")
    table.add_column("installed", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("ctx", justify="right", no_wrap=True)
    if wide:
        table.add_column("description")
    for spec, inst in rows:
        name = f"{spec.name} *" if spec.name == catalog.default.name else spec.name
        cells = [
            name,
            ", ".join(spec.aliases),
            "yes" if inst.installed else "no",
            human_bytes(inst.size_bytes),
            spec.mode,
            str(spec.n_ctx) if spec.n_ctx else "gguf",
        ]
        if wide:
            cells.append(spec.description)
        table.add_row(*(Text(c) for c in cells))  # Text: no markup, `[gemma]` stays literal
    console.print(table)
    console.print("* default model", markup=False)
    for _, inst in rows:
        if not inst.installed:
            console.print(f"not installed: {inst.detail}", markup=False, soft_wrap=True)


@models_app.command("show")
def show_model(
    name: Annotated[str, typer.Argument(help="Model name, alias, or path to a .gguf file.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a model's registry entry and, when installed, what its GGUF header says."""
    from reasoncli.catalog import (
        Installation,
        load_catalog,
        read_gguf_info,
        resolve_model,
        resolve_spec,
    )
    from reasoncli.errors import ModelError

    catalog = load_catalog()
    spec = catalog.find(name)
    info: GGUFInfo | None = None
    if spec is None:  # a path (ad-hoc GGUF), or an unknown name -> ModelError with suggestions
        resolved = resolve_model(name, catalog)
        spec, info = resolved.spec, resolved.info
        inst = Installation(True, resolved.path, resolved.path.stat().st_size, "")
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


# --------------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------------


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
    )
    return data


def _info_json(info: GGUFInfo, spec: ModelSpec) -> dict[str, Any]:
    from dataclasses import asdict

    from reasoncli.catalog import kv_bytes_per_token

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

    from reasoncli.catalog import kv_bytes_per_token

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
    if inst.installed:
        row("file", f"{inst.path}  ({human_bytes(inst.size_bytes)})")
    else:
        row("installed", f"no: {inst.detail}")
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
