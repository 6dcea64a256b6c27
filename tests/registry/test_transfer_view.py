"""The pull/push progress display: one live line per layer on a terminal, plain lines (status
changes only) otherwise."""

from __future__ import annotations

import io

from minibox.cli.transfer_view import TransferView

EVENTS = [{"status": "Resolving x"},
          {"id": "aaa", "status": "Downloading", "current": 1, "total": 10},
          {"id": "bbb", "status": "Downloading", "current": 5, "total": 10},
          {"id": "aaa", "status": "Downloading", "current": 9, "total": 10},
          {"id": "aaa", "status": "Pull complete"},
          {"id": "bbb", "status": "Pull complete"}]


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    view = TransferView(out, tty=False)
    for ev in EVENTS:
        view.event(ev)
    assert out.getvalue().splitlines() == ["Resolving x", "aaa: Downloading",
                                           "bbb: Downloading", "aaa: Pull complete",
                                           "bbb: Pull complete"]


def test_one_live_line_per_layer_on_a_terminal():
    out = io.StringIO()
    view = TransferView(out, tty=True)
    for ev in EVENTS[:4]:
        view.event(ev)
    text = out.getvalue()
    assert "\x1b[2F" in text                          # went back up over both layer lines
    assert "aaa: Downloading [" in text and "9B/10B" in text
    assert view.rows == {"aaa": view.rows["aaa"], "bbb": view.rows["bbb"]}
    assert view.rows["aaa"].endswith("9B/10B")
