"""`reason strategies`: the registry as a table (or JSON)."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def strategies(
    json_out: Annotated[bool, typer.Option("--json", help="Print the registry as JSON.")] = False,
) -> None:
    from reasoncli.cli.io import Terminal
    from reasoncli.strategies.base import REGISTRY, Kind, load_builtin_strategies

    load_builtin_strategies()
    term = Terminal()
    order = {kind: i for i, kind in enumerate(Kind)}
    infos = sorted((cls.info for cls in REGISTRY.values()), key=lambda i: (order[i.kind], i.name))
    if json_out:
        rows = [
            {"name": i.name, "kind": i.kind.value, "summary": i.summary, "options": list(i.options)}
            for i in infos
        ]
        term.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table("name", "kind", "what it does", "options")
    for i in infos:
        table.add_row(
            i.name, i.kind.value, i.summary, ", ".join(o.replace("_", "-") for o in i.options)
        )
    term.out_console().print(table)
