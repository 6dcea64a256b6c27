"""Every command's errors are one clear line (and a hint) on stderr, a non-zero exit and no
traceback: with no daemon, with a daemon answering errors in any shape, and for bad usage.
The walk with a real daemon and real containers is tests/runtime/test_cli_walk.py."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from minibox.cli.commands import COMMANDS


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]      # closed again when the with ends: nothing listens


def cli(*args, api: str, cwd=None, timeout: float = 60):
    env = dict(os.environ, MINIBOX_API=api, NO_COLOR="1")
    env.pop("MINIBOX_API_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "minibox.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def one_error(r, *args) -> str:
    """The run failed with an `error:` line (and at most a hint line), no traceback."""
    out, err = (x.decode() if isinstance(x, bytes) else x for x in (r.stdout, r.stderr))
    assert r.returncode != 0, (args, out, err)
    assert "Traceback" not in err + out, (args, err)
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("error: "), (args, err)
    assert len(lines) <= 2 and all(ln.startswith("  hint: ") for ln in lines[1:]), (args, err)
    return lines[0]


def walk(ctx_dir) -> list[tuple]:
    """A command line for every command (and subcommand) that talks to the daemon."""
    return [("ping",), ("ps",), ("ps", "-a", "--json"), ("images",), ("rmi", "x"),
            ("inspect", "x"), ("logs", "x"), ("logs", "-f", "x"), ("exec", "x", "true"),
            ("stop", "x"), ("kill", "x"), ("rm", "x"), ("start", "x"), ("restart", "x"),
            ("stats", "--no-stream"), ("stats", "--no-stream", "x"), ("stats", "x"),
            ("volume", "ls"), ("volume", "create", "v"), ("volume", "inspect", "v"),
            ("volume", "rm", "v"), ("builds", "ls"), ("builds", "logs", "j"),
            ("builds", "logs", "-f", "j"), ("builds", "cancel", "j"),
            ("build", "-t", "x", str(ctx_dir)), ("build", "-d", "-t", "x", str(ctx_dir)),
            ("run", "--rm", "busybox", "true"), ("run", "-d", "busybox", "true"),
            ("run", "-i", "--rm", "busybox", "cat"), ("db", "run", "busybox"),
            ("db", "shell", "x"), ("pull", "x"), ("push", "x"), ("tag", "a", "b"),
            ("login", "127.0.0.1:1", "-u", "u", "-p", "p"),
            ("save", "x", "-o", str(ctx_dir / "out.tar")),
            ("load", "-i", str(ctx_dir / "MiniBox")), ("system", "df"),
            ("system", "prune", "-f"), ("system", "info"), ("network", "ls"),
            ("network", "create", "n"), ("network", "inspect", "n"), ("network", "rm", "n"),
            ("port", "x")]


@pytest.fixture
def ctx_dir(tmp_path):
    (tmp_path / "MiniBox").write_text("BASE scratch\nBLOCK a\n    ENV X=1\n")
    return tmp_path


def test_every_command_is_walked(ctx_dir):
    walked = {a[0] for a in walk(ctx_dir)}
    # logout only edits the local credentials file; compose reads a project file first
    # (its errors against a real daemon: tests/compose)
    assert walked >= set(COMMANDS) - {"completion", "logout", "compose"}


def test_daemon_down(ctx_dir):
    api = f"http://127.0.0.1:{closed_port()}"
    for args in walk(ctx_dir):
        line = one_error(cli(*args, api=api), *args)
        assert "cannot reach miniboxd" in line, (args, line)


class _Answers(BaseHTTPRequestHandler):
    """A stand-in daemon on loopback whose every answer is an error of one shape."""

    shape = "fastapi"

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        elif "chunked" in (self.headers.get("transfer-encoding") or ""):
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                self.rfile.read(size + 2)
                if not size:
                    break
        status, ctype, body = {
            "fastapi": (422, "application/json", json.dumps({"detail": [
                {"type": "int_parsing", "loc": ["body", "memory"],
                 "msg": "Input should be a valid integer", "input": "x"},
                {"type": "missing", "loc": ["query", "t"], "msg": "Field required"}]})),
            "ours": (409, "application/json", json.dumps({"error": {
                "kind": "conflict", "message": "it is in the way", "hint": "move it"}})),
            "html": (502, "text/html", "<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>"),
            "detail": (404, "application/json", json.dumps({"detail": "Not Found"})),
        }[self.shape]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("shape,expect", [
    ("fastapi", "memory: Input should be a valid integer; t: Field required"),
    ("ours", "it is in the way"),
    ("html", "502: 502 Bad Gateway"),
    ("detail", "404: Not Found"),
])
def test_daemon_answering_errors(ctx_dir, shape, expect):
    handler = type("H", (_Answers,), {"shape": shape})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        api = f"http://127.0.0.1:{server.server_address[1]}"
        for args in walk(ctx_dir):
            if args[0] == "inspect":       # its own message: no such container or image
                continue
            line = one_error(cli(*args, api=api), *args)
            assert expect in line, (args, line)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"ffff\r\n\x01\0\0\0"],
                         ids=["not-http", "reset-mid-answer"])
def test_something_else_on_the_port(ctx_dir, answer):
    """MINIBOX_API names a port where something else (an SSH-like banner) answers, or the
    daemon's connection is reset in the middle of an answer."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    conn.recv(65536)
                    conn.sendall(answer)
                    time.sleep(0.05)
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))     # close = reset
                except OSError:
                    pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        api = f"http://127.0.0.1:{srv.getsockname()[1]}"
        for args in walk(ctx_dir):
            one_error(cli(*args, api=api), *args)
    finally:
        stop.set()
        try:
            srv.shutdown(socket.SHUT_RDWR)      # wakes the accept
        except OSError:
            pass
        srv.close()


@pytest.mark.parametrize("args,message,hint", [
    (("biuld",), "unknown command 'biuld'", "did you mean `minibox build`?"),
    (("volume", "craete", "x"), "unknown command 'craete'", "`minibox volume create`"),
    (("xyzzy",), "unknown command 'xyzzy'", "`minibox --help` lists the commands"),
    (("stop", "-t", "x", "c"), "'x' is not a valid integer", "`minibox stop --help`"),
    (("logs", "--tail", "x", "c"), "invalid --tail 'x'", "a number of lines"),
    (("images", "--bogus"), "no such option '--bogus'", "`minibox images --help`"),
    (("run",), "missing argument 'IMAGE'", "`minibox run --help`"),
    (("run", "-t", "busybox"), "the input device is not a TTY", "drop -t"),
    (("completion", "tcsh"), "'tcsh' is not one of", "`minibox completion --help`"),
])
def test_usage_errors(args, message, hint):
    r = cli(*args, api=f"http://127.0.0.1:{closed_port()}")
    line = one_error(r, *args)
    assert message in line and hint in r.stderr, r.stderr
    assert r.returncode == 2


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F"),
                                          ("zsh", "compdef"), ("fish", "complete --no-files")])
def test_completion_scripts(shell, marker):
    r = cli("completion", shell, api="http://127.0.0.1:9")
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and "_MINIBOX_COMPLETE" in r.stdout


def complete(words: str, api: str, data_root=None) -> list[str]:
    """What bash completion offers for the command line ``words`` (the last word being
    typed), through the real program (which finds the daemon's token under ``data_root``,
    as a user's shell would through MINIBOX_DATA_ROOT)."""
    parts = words.split(" ")
    env = dict(os.environ, MINIBOX_API=api, _MINIBOX_COMPLETE="bash_complete",
               COMP_WORDS=words, COMP_CWORD=str(len(parts) - 1))
    if data_root is not None:
        env["MINIBOX_DATA_ROOT"] = str(data_root)
    r = subprocess.run([sys.executable, "-m", "minibox.cli.main"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr, r.stderr
    return [ln.partition(",")[2] for ln in r.stdout.splitlines() if ln]


def test_completion_of_commands_and_no_daemon():
    api = f"http://127.0.0.1:{closed_port()}"
    assert complete("minibox bu", api) == ["build", "builds"]
    assert complete("minibox volume ", api) == ["create", "inspect", "ls", "rm"]
    assert complete("minibox logs ", api) == []              # no daemon: nothing, silently
    assert complete("minibox run --network ", api) == ["none", "host"]
