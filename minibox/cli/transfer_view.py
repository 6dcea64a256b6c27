"""Showing a pull's or push's NDJSON progress: one live line per layer on a terminal, plain
lines (status changes only) otherwise."""

from __future__ import annotations

from minibox.cli import fastjson as json
import sys

from minibox.errors import MiniBoxError


def _bar(current: int, total: int) -> str:
    from minibox.cli.tables import human_size

    if not total:
        return human_size(current)
    width = 30
    filled = min(width, int(width * current / total))
    return f"[{'=' * filled}{' ' * (width - filled)}] {human_size(current)}/{human_size(total)}"


class TransferView:
    def __init__(self, out=None, tty: bool | None = None):
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.rows: dict[str, str] = {}          # layer id -> its current line
        self.drawn = 0
        self.last_plain: dict[str, str] = {}

    def event(self, ev: dict) -> None:
        ident, status = ev.get("id"), str(ev.get("status", ""))
        if not ident:
            self._message(status)
            return
        if self.tty:
            text = status
            if status in ("Downloading", "Pushing") and ev.get("current") is not None:
                text = f"{status} {_bar(int(ev['current']), int(ev.get('total') or 0))}"
            self.rows[ident] = f"{ident}: {text}"
            self._redraw()
        elif self.last_plain.get(ident) != status:
            self.last_plain[ident] = status
            print(f"{ident}: {status}", file=self.out, flush=True)

    def _message(self, text: str) -> None:
        if self.tty and self.drawn:
            self._clear()
            print(text, file=self.out)
            self._redraw()
        else:
            print(text, file=self.out, flush=True)

    def _clear(self) -> None:
        self.out.write(f"\x1b[{self.drawn}F\x1b[J")
        self.drawn = 0

    def _redraw(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")
        for line in self.rows.values():
            self.out.write("\x1b[2K" + line + "\n")
        self.drawn = len(self.rows)
        self.out.flush()


def follow(resp, quiet: bool = False) -> dict:
    """Read an NDJSON transfer stream (a cli/client answer, which makes a connection lost
    mid-way the CLI's one clear error) to its end; returns the result, raises its error."""
    view = None if quiet else TransferView()
    for line in resp.iter_lines():
        if not line.strip():
            continue
        ev = json.loads(line)
        if "result" in ev:
            return ev["result"]
        if "error" in ev:
            raise MiniBoxError.from_dict(ev["error"])
        if view is not None:
            view.event(ev)
    raise MiniBoxError("the daemon closed the stream before the operation ended",
                       hint="see the daemon's log; then try again")
