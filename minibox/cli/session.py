"""Foreground, detached and interactive runs, and exec, on the CLI side."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import click

from minibox.errors import MiniBoxError

START_FAILED = 125


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
        return _foreground(None, body, stdin=interactive)
    info = _create(client, body)
    for w in info.get("warnings") or []:
        click.echo(f"WARNING: {w}", err=True)
    cid = info["id"]
    if detach:
        click.echo(cid)
        return 0
    if tty:
        return _interactive(client, cid, f"/containers/{cid}/logs",
                            {"follow": True, "mux": True, "exit": True},
                            f"/containers/{cid}/attach/input", f"/containers/{cid}/resize",
                            interactive)
    return _foreground(client, cid)


def _foreground(client, body: dict, stdin: bool = False) -> int:
    """One streamed request: create, start, output until exit, then the exit code.
    Ctrl-C / SIGTERM / SIGHUP are forwarded to the container (like docker's sig-proxy).
    ``stdin`` (-i): our stdin goes to the container's on a second request once it runs.
    Uses the stdlib client (cli/fasthttp.py): importing httpx would cost more than the run."""
    from minibox.cli import fasthttp
    from minibox.cli.streams import copy_out, feed_stdin
    cid: list[str] = []

    def forward(signum, _frame):
        if cid:
            try:
                fasthttp.stream_post(f"/containers/{cid[0]}/kill", {"signal": str(signum)},
                                     {}, timeout=10).read()
            except MiniBoxError:
                pass
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        resp = fasthttp.stream_post("/containers", {"attach": "true"}, body)
        cid.append(resp.getheader("x-container-id", ""))
        if stdin and cid[0]:
            feed_stdin(f"/containers/{cid[0]}/attach/stdin")
        result = copy_out(resp)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return _code(result)


def exit_now_if_program(code: int) -> None:
    """When this process is the ``minibox`` program: flush and exit at once with ``code``.
    A foreground run has nothing left to do, and tearing the interpreter down (click and
    all) would add ~5 ms to every ``minibox run``.  Called in-process (tests), it returns."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if not ((spec is not None and spec.name == "minibox.cli.main")
            or os.path.basename(sys.argv[0] if sys.argv else "") == "minibox"):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return    # let the normal exit path report / handle it
    os._exit(code)


def _code(result: dict | None) -> int:
    if not result or result.get("exit_code") is None:
        return START_FAILED
    code = int(result["exit_code"])
    return code if code >= 0 else START_FAILED


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
        return _code(copy_out(r))


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
    return _code(result.get("exit"))


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



