"""``minibox stats``: one sample (--no-stream) or a refreshing table."""

from __future__ import annotations

import json
import time

import click


def _size(n: float) -> str:
    if n < 1024:
        return f"{int(n)}B"
    for unit in "KMGTP":
        n /= 1024
        if n < 1024:
            return f"{n:.2f}{unit}iB"
    return f"{n:.2f}EiB"


def _rows(client, containers: list[str], all_: bool) -> list[dict]:
    from urllib.parse import quote
    if containers:
        return [client.get(f"/containers/{quote(c, safe='')}/stats").json() for c in containers]
    return client.get("/containers/stats", params={"all": all_}).json()


def _table(rows: list[dict]) -> list[str]:
    head = f"{'CONTAINER ID':<14}{'NAME':<24}{'CPU %':>8}  {'MEM USAGE / LIMIT':<22}{'MEM %':>7}  " \
           f"{'NET I/O':<20}{'BLOCK I/O':<20}{'PIDS':>5}"
    out = [head]
    for r in rows:
        lim = _size(r["memory_limit"]) if r["memory_limit"] else "unlimited"
        out.append(f"{r['id'][:12]:<14}{(r.get('name') or '')[:23]:<24}{r['cpu_percent']:>7.2f}%  "
                   f"{_size(r['memory_usage']) + ' / ' + lim:<22}{r['memory_percent']:>6.2f}%  "
                   f"{_size(r['net_rx']) + ' / ' + _size(r['net_tx']):<20}"
                   f"{_size(r['block_read']) + ' / ' + _size(r['block_write']):<20}{r['pids']:>5}")
    return out


def show(client, containers: list[str], no_stream: bool, as_json: bool, all_: bool) -> int:
    while True:
        rows = _rows(client, containers, all_)
        if as_json:
            click.echo(json.dumps(rows if not containers or len(rows) > 1 else rows[0]))
        else:
            if not no_stream:
                click.echo("\x1b[H\x1b[2J", nl=False)
            click.echo("\n".join(_table(rows)))
        if no_stream:
            return 0
        time.sleep(1.0)
