"""Plain aligned tables (no rich needed for the common case: fast, pipe-friendly)."""

from __future__ import annotations

import click


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    fmt = "   ".join("{:<%d}" % w for w in widths)
    click.echo(fmt.format(*headers).rstrip())
    for r in cells:
        click.echo(fmt.format(*r).rstrip())


def print_listing(rows: list[dict], as_json: bool, quiet: bool, headers: list[str],
                  row) -> None:
    """An ``ls`` command's output: JSON, names only (-q), or a table of ``row(r)``."""
    if as_json:
        import json
        click.echo(json.dumps(rows, indent=2))
    elif quiet:
        for r in rows:
            click.echo(r["name"])
    else:
        print_table(headers, [row(r) for r in rows])


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}TB"
