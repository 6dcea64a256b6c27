"""``minibox stats``: one sample (--no-stream) or a refreshing table.

``stats --no-stream`` also has a click-free fast path (``try_fast``, called from main.py):
Python start-up plus click would be most of its ~40 ms."""

from __future__ import annotations

from minibox.cli import fastjson as json
import sys
import time


def _size(n: float) -> str:
    if n < 1024:
        return f"{int(n)}B"
    for unit in "KMGTP":
        n /= 1024
        if n < 1024:
            return f"{n:.2f}{unit}iB"
    return f"{n:.2f}EiB"


def _rows(containers: list[str], all_: bool) -> list[dict]:
    from minibox.cli.client import Client, quote
    client = Client(timeout=30)
    if containers:
        return [client.get(f"/containers/{quote(c).replace('/', '%2F')}/stats").json()
                for c in containers]
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


def show(containers: list[str], no_stream: bool, as_json: bool, all_: bool) -> int:
    out = sys.stdout
    while True:
        rows = _rows(containers, all_)
        if as_json:
            out.write(json.dumps(rows if not containers or len(rows) > 1 else rows[0]) + "\n")
        else:
            if not no_stream:
                out.write("\x1b[H\x1b[2J")
            out.write("\n".join(_table(rows)) + "\n")
        out.flush()
        if no_stream:
            return 0
        time.sleep(1.0)


_FAST_FLAGS = {"--no-stream": "no_stream", "--json": "as_json", "-a": "all_", "--all": "all_"}


def parse_fast(args: list[str]) -> dict | None:
    """The options of ``stats ARGS`` as the click command gets them, for a --no-stream
    one-shot; None for anything else (streaming, help, unknown or bundled flags)."""
    opts = {"no_stream": False, "as_json": False, "all_": False, "containers": []}
    rest = list(args)
    while rest:
        a = rest.pop(0)
        if a == "--":
            opts["containers"] += rest
            break
        if a.startswith("-") and a != "-":
            if a not in _FAST_FLAGS:
                return None
            opts[_FAST_FLAGS[a]] = True
        else:
            opts["containers"].append(a)
    return opts if opts["no_stream"] else None


def try_fast(args: list[str]) -> int | None:
    opts = parse_fast(args)
    if opts is None:
        return None
    from minibox.errors import MiniBoxError
    try:
        return show(opts["containers"], True, opts["as_json"], opts["all_"])
    except MiniBoxError as e:
        from minibox.cli.output import error
        error(e.render())
        return e.exit_code
