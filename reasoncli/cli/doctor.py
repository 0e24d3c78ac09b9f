"""`reason doctor`: backend, threads, RAM/VRAM, and which installed models fit a request."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from reasoncli.cli.flags import number_option

if TYPE_CHECKING:
    from reasoncli.doctor import DoctorReport, ModelFit
    from reasoncli.engine.cpu_buffers import BufferChoice


def doctor(
    branches: Annotated[
        int, number_option("--branches", "-n", help="Branches to plan for (as `ask`).", low=1)
    ] = 8,
    max_tokens: Annotated[
        int, number_option("--max-tokens", help="New tokens per branch (as `ask`).", low=1)
    ] = 512,
    prompt_tokens: Annotated[
        int, number_option("--prompt-tokens", help="Prompt length to assume.", low=1)
    ] = 256,
    gpu_layers: Annotated[
        int | None,
        typer.Option("--gpu-layers", help="Layers to offload; default all with a GPU backend."),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Check only this model (name or .gguf); repeatable."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show the llama.cpp backend, threads, RAM/VRAM, and for each installed model whether
    N branches x T tokens fit (weights + KV cache + buffers: the estimate `ask` enforces)."""
    from reasoncli.cli.io import Terminal
    from reasoncli.doctor import FitRequest, run_doctor

    request = FitRequest(branches, max_tokens, prompt_tokens, gpu_layers)
    report = run_doctor(request, model or None)
    term = Terminal()
    if as_json:
        term.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    _render(report, term.out_console())


def _gib(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _render(report: DoctorReport, console: object) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from reasoncli.doctor import human_backend

    hw = report.hardware
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(key: str, value: str) -> None:
        grid.add_row(Text(key), Text(value))

    row("backend", human_backend(hw.backend))
    if hw.cpu_flags:
        row("cpu flags", " ".join(hw.cpu_flags))
    if hw.backend.cpu_features:
        row("build uses", " ".join(hw.backend.cpu_features))
    if hw.extra_buffers is not None:
        row("extra buffers", _buffers_line(hw.extra_buffers))
    shared = (
        "shared by concurrent runs"
        if hw.share_cores
        else "not shared (OMP_WAIT_POLICY or REASON_SHARE_CORES=0 set)"
    )
    row("threads", f"{hw.threads} (of {hw.cpus or '?'} CPUs; --threads overrides; {shared})")
    ram = f"{_gib(hw.ram_available)} available of {_gib(hw.ram_total)}"
    if hw.memory_limit is not None:
        ram += f"; REASON_MEMORY_LIMIT {_gib(hw.memory_limit)}"
    row("RAM", ram)
    if hw.gpus:
        for g in hw.gpus:
            via = g.backend or g.source
            row("GPU", f"{g.name} ({via}): {_gib(g.free_bytes)} free of {_gib(g.total_bytes)}")
    else:
        row("GPU", "none found (VRAM unknown)")
    for hint in hw.hints:
        row("hint", hint)
    console.print(grid)  # type: ignore[attr-defined]

    req = report.request
    console.print(  # type: ignore[attr-defined]
        Text(
            f"\nWhat fits {req.branches} branches x {req.max_tokens} new tokens "
            f"(+{req.prompt_tokens} prompt tokens): weights + KV cache + buffers"
        )
    )
    if not report.models:
        console.print(Text("no installed models; see `reason models list`"))  # type: ignore[attr-defined]
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    width = max(len(m.name) for m in report.models)
    table.add_column("model", no_wrap=True, min_width=width)
    for col in ("weights", "KV cache", "total"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("on", no_wrap=True)
    table.add_column("fits", no_wrap=True)
    table.add_column("max branches", justify="right")
    table.add_column("max tokens", justify="right")
    notes: list[str] = []
    for m in report.models:
        table.add_row(*(Text(c) for c in _cells(m)))
        if m.problem:
            notes.append(f"{m.name}: {m.problem}")
        elif m.assessment is not None and m.assessment.fit.fits is False:
            notes.append(f"{m.name}: {m.assessment.refusal()}")
    console.print(table)  # type: ignore[attr-defined]
    for note in notes:
        console.print(Text(note), soft_wrap=True)  # type: ignore[attr-defined]


def _buffers_line(choice: BufferChoice) -> str:
    in_use = ", ".join(choice.in_use) or "none"
    off = [name for name in choice.available if name not in choice.in_use]
    left = f"; not used: {', '.join(off)}" if off else ""
    return (
        f"{in_use}{left} ({choice.mode}, by {choice.source}: {choice.reason}); "
        "override with --cpu-extra-buffers or REASON_CPU_EXTRA_BUFFERS"
    )


def _cells(m: ModelFit) -> list[str]:
    a = m.assessment
    if a is None:
        return [m.name, "-", "-", "-", "-", "no" if m.fits is False else "?", "-", "-"]
    e, o = a.estimate, m.offload
    where = "CPU"
    if o is not None and o.gpu_layers > 0:
        where = "GPU" if o.gpu_layers >= o.n_layer else f"GPU {o.gpu_layers}/{o.n_layer}"
    verdict = {True: "yes", False: "no", None: "?"}[a.fit.fits]
    return [
        m.name,
        _gib(e.weights_bytes),
        _gib(e.kv_bytes),
        _gib(e.total_bytes),
        where,
        verdict,
        str(a.max_branches) if a.max_branches else "-",
        str(a.max_tokens) if a.max_tokens else "-",
    ]
