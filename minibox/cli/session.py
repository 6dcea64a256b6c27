"""Foreground, detached and interactive runs, and exec, on the CLI side."""

from __future__ import annotations

import os
import signal
import sys
import threading

import click

from minibox.cli.foreground import exit_code, exit_now_if_program, run_foreground  # noqa: F401 (re-export)
from minibox.errors import MiniBoxError


def _raise_for(client, resp) -> None:
    """Raise the daemon's error; one that carries an exit code (127: command not found)
    keeps it, so `run` can exit with it."""
    from minibox.cli.client import check
    if resp.status_code < 400:
        return
    try:
        resp.read()
        err = resp.json().get("error") or {}
    except ValueError:
        err = {}
    if err.get("exit_code"):
        e = MiniBoxError.from_dict(err)
        e.exit_code = err["exit_code"]
        raise e
    check(resp)


def _create(client, body: dict) -> dict:
    import httpx
    try:
        resp = client.http.post("/containers", json=body)
    except httpx.TransportError as e:
        raise client._unavailable(e) from None
    _raise_for(client, resp)
    return resp.json()


def run_container(client, body: dict, *, detach: bool, tty: bool, interactive: bool) -> int:
    if tty and not detach and not sys.stdin.isatty():
        raise MiniBoxError("the input device is not a TTY", hint="drop -t, or run from a terminal")
    if tty and detach is False and not interactive:
        body["interactive"] = False
    if not detach and not tty:
        return run_foreground(body, interactive=interactive)
    info = _create(client, body)
    for w in info.get("warnings") or []:
        click.echo(f"WARNING: {w}", err=True)
    cid = info["id"]
    if detach:
        click.echo(cid)
        return 0
    return _interactive(client, cid, f"/containers/{cid}/logs",          # -t
                        {"follow": True, "mux": True, "exit": True},
                        f"/containers/{cid}/attach/input", f"/containers/{cid}/resize",
                        interactive)


def exec_in(client, container: str, body: dict, *, tty: bool, interactive: bool) -> int:
    from urllib.parse import quote
    ref = quote(container, safe="")
    if tty:
        if not sys.stdin.isatty():
            raise MiniBoxError("the input device is not a TTY", hint="drop -t")
        eid = client.post(f"/containers/{ref}/exec", json=body).json()["exec_id"]
        return _interactive(client, eid, f"/containers/exec/{eid}/output", {},
                            f"/containers/exec/{eid}/input", f"/containers/exec/{eid}/resize",
                            interactive)
    from minibox.cli.streams import copy_out, feed_stdin
    body["interactive"] = interactive
    with client.stream("POST", f"/containers/{ref}/exec", json=body) as r:
        eid = r.headers.get("x-exec-id")
        if r.status_code < 400 and eid:
            feed_stdin(f"/containers/exec/{eid}/stdin")
        return exit_code(copy_out(r))


def _interactive(client, key: str, out_path: str, out_params: dict, in_path: str,
                 resize_path: str, interactive: bool) -> int:
    """Raw terminal: output from a stream, keys POSTed as they come, SIGWINCH -> resize."""
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
            pass
    result: dict = {}
    done = threading.Event()

    def pump():
        try:
            with client.stream("GET", out_path, params=out_params) as r:
                result["exit"] = copy_out(r)
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



