"""Rendering a build's event stream: a live per-block view on a terminal (rich), prefixed
plain lines otherwise, or the raw events as JSON lines."""

from __future__ import annotations

import json
import sys
import time

import click


def make_renderer(mode: str = "auto"):
    if mode == "auto":
        mode = "tty" if sys.stderr.isatty() else "plain"
    return {"plain": PlainRenderer, "json": JsonRenderer, "tty": TtyRenderer,
            "quiet": QuietRenderer}[mode]()


def _fmt_dur(sec: float) -> str:
    return f"{sec * 1000:.0f}ms" if sec < 1 else f"{sec:.1f}s"


def error_text(err: dict | None) -> str:
    err = err or {}
    text = err.get("message", "unknown error")
    if err.get("hint"):
        text += "\n  hint: " + err["hint"]
    return text


class JsonRenderer:
    def event(self, ev: dict) -> None:
        click.echo(json.dumps(ev))

    def close(self) -> None:
        pass


class QuietRenderer:
    """Nothing while it runs; the error if it fails."""

    def event(self, ev: dict) -> None:
        if ev["type"] == "job_failed":
            print("error: " + error_text(ev.get("error")), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class PlainRenderer:
    """One line per event, each prefixed with the block it is about."""

    def __init__(self, out=None):
        self.out = out or sys.stderr
        self.t0 = time.monotonic()

    def w(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def event(self, ev: dict) -> None:
        t, b = ev["type"], ev.get("block", "")
        if t == "job_start":
            self.w(f"[build] {ev['tag']}: {ev['blocks']} block(s)")
        elif t == "base":
            self.w(f"[base] {ev['ref']} ({ev['layers']} layer(s))")
        elif t == "wave_start":
            self.w(f"[wave {ev['wave']}] {', '.join(ev['blocks'])}")
        elif t == "block_queued":
            self.w(f"[{b}] building: {ev.get('reason', '')}")
        elif t == "block_cached":
            self.w(f"[{b}] CACHED" + (" (metadata only)" if ev.get("note") else ""))
        elif t == "block_start":
            self.w(f"[{b}] started on {ev.get('worker', '?')}")
        elif t == "block_step":
            if ev.get("text"):
                self.w(f"[{b}] {ev['text']}")
        elif t == "log":
            self.w(f"[{b}] | {ev['line']}")
        elif t == "block_done":
            self.w(f"[{b}] DONE {_fmt_dur(ev.get('duration', 0))}")
        elif t == "block_retry":
            self.w(f"[{b}] retrying (attempt {ev['attempt']}): {ev['reason']}")
        elif t == "block_failed":
            self.w(f"[{b}] FAILED")
        elif t == "image":
            self.w(f"[image] {ev['tag']} {ev['digest']}")
        else:
            self._final(ev)

    def _final(self, ev: dict) -> None:
        t = ev["type"]
        if t == "job_done":
            self.w(f"Successfully built {ev['tag']} ({ev['digest'][:19]}) in "
                   f"{_fmt_dur(ev['duration'])}: {ev['cached']} cached, {ev['built']} built")
        elif t == "job_failed":
            self.w("error: " + error_text(ev.get("error")))
        elif t == "job_cancelled":
            self.w("build cancelled")

    def close(self) -> None:
        pass


class TtyRenderer(PlainRenderer):
    """A live table of blocks (state, time, last output line) while the build runs; a
    running block's elapsed time ticks between events."""

    def __init__(self):
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.blocks: dict[str, dict] = {}
        self.header = "starting"
        # get_renderable: drawn anew at each refresh, so a running block's time ticks
        self.live = Live(console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._render)
        self.live.start()
        self.final: list[str] = []
        self.failed_tail: dict[str, list[str]] = {}

    def _row(self, b: str) -> dict:
        return self.blocks.setdefault(b, {"state": "waiting", "t0": None, "dur": None,
                                          "last": "", "tail": []})

    def event(self, ev: dict) -> None:
        t, b = ev["type"], ev.get("block")
        if t == "job_start":
            self.header = f"building {ev['tag']}"
        elif t == "wave_start":
            for name in ev["blocks"]:
                self._row(name)
            self.header = f"wave {ev['wave']}: {', '.join(ev['blocks'])}"
        elif b and t in ("block_queued", "block_cached", "block_start", "block_done",
                         "block_failed", "log", "block_step", "block_retry"):
            self._block_event(t, b, ev)
        elif t in ("job_done", "job_failed", "job_cancelled"):
            self.live.stop()
            self.console.print(self._render())
            for name, tail in self.failed_tail.items():
                self.console.print(f"[red]{name}[/red] last output:", highlight=False)
                for line in tail:
                    self.console.print("  " + line, markup=False, highlight=False)
            self._final(ev)
            return
        self.live.refresh()

    def _block_event(self, t: str, b: str, ev: dict) -> None:
        row = self._row(b)
        if t == "block_queued":
            row["state"] = "queued"
        elif t == "block_cached":
            row["state"], row["dur"] = "cached", 0.0
        elif t == "block_start":
            row["state"], row["t0"] = "running", time.monotonic()
        elif t == "block_done":
            row["state"], row["dur"] = "done", ev.get("duration", 0)
        elif t == "block_failed":
            row["state"] = "failed"
            self.failed_tail[b] = ev.get("tail") or row["tail"]
        elif t == "log":
            row["last"] = ev["line"]
            row["tail"] = (row["tail"] + [ev["line"]])[-20:]
        elif t == "block_step" and ev.get("text"):
            row["last"] = ev["text"]

    def _render(self):
        from rich.table import Table

        colours = {"cached": "blue", "done": "green", "failed": "red", "running": "yellow"}
        table = Table.grid(padding=(0, 2))
        table.add_row(f"[bold]{self.header}[/bold]")
        for name, row in list(self.blocks.items()):     # (events come in on another thread)
            dur = row["dur"]
            if dur is None and row["t0"]:
                dur = time.monotonic() - row["t0"]
            c = colours.get(row["state"], "white")
            last = row["last"][:70] if row["state"] in ("running", "failed") else ""
            table.add_row(f"[{c}]{row['state']:>7}[/{c}]  {name}",
                          _fmt_dur(dur) if dur is not None else "", last)
        return table

    def close(self) -> None:
        if self.live.is_started:
            self.live.stop()
