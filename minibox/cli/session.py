"""Foreground, detached and interactive runs, and exec, on the CLI side."""

from __future__ import annotations

import os
import signal
import sys
import threading

import click

from minibox.cli.foreground import exit_code, exit_now_if_program, run_foreground  # noqa: F401 (re-export)
from minibox.errors import MiniBoxError, UserError


def run_container(client, body: dict, *, detach: bool, tty: bool, interactive: bool) -> int:
    if tty and not detach and not sys.stdin.isatty():
        raise UserError("the input device is not a TTY", hint="drop -t, or run from a terminal")
    if tty and detach is False and not interactive:
        body["interactive"] = False
    if not detach and not tty:
        return run_foreground(body, interactive=interactive)
    if not detach:
        return _run_tty(client, body, interactive)
    info = client.post("/containers", json=body).json()
    for w in info.get("warnings") or []:
        click.echo(f"WARNING: {w}", err=True)
    click.echo(info["id"])
    return 0


def _run_tty(client, body: dict, interactive: bool) -> int:
    """-t in the foreground: one request creates, starts and streams the container's output
    from its first byte to its exit record (a fast command with --rm is gone, record and
    all, before a second request could ask for its output); keys and resizes go to it by id."""
    with client.stream("POST", "/containers", params={"attach": True}, json=body) as r:
        cid = r.headers.get("x-container-id", "")
        return _interactive(client, r, f"/containers/{cid}/attach/input",
                            f"/containers/{cid}/resize", interactive)


def exec_in(client, container: str, body: dict, *, tty: bool, interactive: bool) -> int:
    from urllib.parse import quote
    ref = quote(container, safe="")
    if tty:
        if not sys.stdin.isatty():
            raise UserError("the input device is not a TTY", hint="drop -t")
        eid = client.post(f"/containers/{ref}/exec", json=body).json()["exec_id"]
        with client.stream("GET", f"/containers/exec/{eid}/output") as r:
            return _interactive(client, r, f"/containers/exec/{eid}/input",
                                f"/containers/exec/{eid}/resize", interactive)
    from minibox.cli.streams import copy_out, feed_stdin
    body["interactive"] = interactive
    with client.stream("POST", f"/containers/{ref}/exec", json=body) as r:
        eid = r.headers.get("x-exec-id")
        if r.status_code < 400 and eid:
            feed_stdin(f"/containers/exec/{eid}/stdin")
        return exit_code(copy_out(r))


def _interactive(client, resp, in_path: str, resize_path: str, interactive: bool) -> int:
    """Raw terminal: the output from ``resp`` (an open stream), keys POSTed as they come,
    SIGWINCH -> resize.  An error while streaming is raised once the terminal is restored."""
    import termios
    import tty as ttymod
    from minibox.cli.streams import copy_out
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def resize(*_):
        cols, rows = os.get_terminal_size(fd)
        try:
            client.post(resize_path, params={"h": rows, "w": cols})
        except MiniBoxError:
            pass      # the container has exited already: nothing to resize
    result: dict = {}
    done = threading.Event()

    def pump():
        try:
            result["exit"] = copy_out(resp)
        except MiniBoxError as e:
            result["error"] = e
        except Exception as e:  # noqa: BLE001 - the connection broke mid-stream
            result["error"] = MiniBoxError(f"lost the connection to miniboxd: {e}")
        finally:
            done.set()
    ttymod.setraw(fd)
    old = signal.signal(signal.SIGWINCH, resize)
    try:
        resize()
        threading.Thread(target=pump, daemon=True).start()
        if interactive:
            _keys(client, fd, in_path, done)
        done.wait()
    finally:
        signal.signal(signal.SIGWINCH, old)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    if "error" in result:
        raise result["error"]
    return exit_code(result.get("exit"))


def _keys(client, fd: int, in_path: str, done: threading.Event) -> None:
    import select
    while not done.is_set():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        data = os.read(fd, 4096)
        if not data:
            break
        try:
            client.post(in_path, content=data)
        except MiniBoxError:
            break



