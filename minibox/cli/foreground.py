"""A foreground `minibox run` on the CLI side: one streamed request, output until the
container exits, then its exit code.  No click and no json here (the fast path of `run`,
cli/fastrun.py, comes straight to this module)."""

from __future__ import annotations

import os
import sys

try:     # the C module: signal.py wraps it in enums, and importing enum is ~3 ms here
    import _signal as signal
except ImportError:  # pragma: no cover - not CPython
    import signal

from minibox.errors import MiniBoxError

START_FAILED = 125


def run_foreground(body: dict, interactive: bool = False) -> int:
    """Create, start and stream the container's output; its exit code.
    Ctrl-C / SIGTERM / SIGHUP are forwarded to the container (like docker's sig-proxy).
    ``interactive`` (-i): our stdin goes to the container's on a second request once it
    runs."""
    from minibox.cli.client import Client
    from minibox.cli.streams import copy_out, feed_stdin
    cid: list[str] = []

    def forward(signum, _frame):
        if cid:
            try:
                Client(timeout=10).post(f"/containers/{cid[0]}/kill",
                                        params={"signal": signum}, json={})
            except MiniBoxError:
                pass
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        resp = Client(timeout=None).stream("POST", "/containers", params={"attach": True},
                                           json=body)
        cid.append(resp.headers.get("x-container-id", ""))
        if interactive and cid[0]:
            feed_stdin(f"/containers/{cid[0]}/attach/stdin")
        result = copy_out(resp)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return exit_code(result)


def exit_code(result: dict | None) -> int:
    if not result or result.get("exit_code") is None:
        return START_FAILED
    code = int(result["exit_code"])
    return code if code >= 0 else START_FAILED


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
