"""Issue 8, item 5: the errors found in the trial are messages, not tracebacks, and a fast
command on a terminal keeps its output and exit code."""

from __future__ import annotations

import time

from tests.runtime.conftest import run_ok
from tests.runtime.test_tty_and_monitor import Term


def clean(r) -> None:
    assert b"Traceback" not in r.stdout + r.stderr, r.stderr


def test_run_it_rm_fast_command_keeps_output_and_exit_code(farm):
    for args, out, code in ((("echo", "hi"), b"hi\r\n", 0),
                            (("sh", "-c", "echo bye; exit 3"), b"bye\r\n", 3)):
        t = Term(farm, "run", "-it", "--rm", "busybox", *args)
        try:
            assert t.wait(timeout=60) == code, t.seen
            assert out in t.seen, t.seen
            assert b"Traceback" not in t.seen and b"error" not in t.seen, t.seen
        finally:
            t.close()


def test_run_t_without_i_fast_command(farm):
    t = Term(farm, "run", "-t", "--rm", "busybox", "sh", "-c", "tty; exit 4")
    try:
        assert t.wait(timeout=60) == 4, t.seen
        assert b"/dev/pts/0" in t.seen
    finally:
        t.close()


def test_exec_at_the_pids_limit_is_a_message(farm):
    # tini, sh and two sleeps: the 4 processes the limit allows
    cid = run_ok(farm, "run", "-d", "--pids-limit", "4", "busybox", "sh", "-c",
                 "sleep 60 & sleep 60 & echo full; wait").strip()
    try:
        deadline = time.monotonic() + 30
        while b"full" not in farm.cli("logs", cid).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = farm.cli("exec", cid, "true")
        clean(r)
        assert r.returncode != 0
        assert b"pids limit" in r.stderr, r.stderr
    finally:
        farm.cli("rm", "-f", cid)


def test_memory_limit_too_large_for_the_kernel(farm):
    for value in ("99999999999g", "9999999999999999999999"):
        r = farm.cli("run", "--rm", "-m", value, "busybox", "true")
        clean(r)
        assert r.returncode != 0, (value, r)
        assert b"memory limit" in r.stderr and b"too large" in r.stderr, r.stderr
        r = farm.cli("run", "-d", "--rm", "-m", value, "busybox", "true")
        clean(r)
        assert r.returncode != 0 and b"too large" in r.stderr, r.stderr


def test_run_it_errors_are_messages_on_a_terminal(farm):
    for args, code, message in ((("nope-image", "sh"), 1, b"not found"),
                                (("busybox", "/no/such/cmd"), 127, b"not found")):
        t = Term(farm, "run", "-it", "--rm", *args)
        try:
            assert t.wait(timeout=60) == code, t.seen
            assert b"error: " in t.seen and message in t.seen, t.seen
            assert b"Traceback" not in t.seen, t.seen
        finally:
            t.close()


def test_exec_tty_session_errors_are_answers(farm):
    """Input to an ended exec session and impossible sizes: a 4xx, not a 500."""
    from tests.test_cli_errors import one_error
    cid = run_ok(farm, "run", "-d", "-t", "busybox", "sleep", "60").strip()
    try:
        with farm.http() as c:
            eid = c.post(f"/containers/{cid}/exec", json={"cmd": ["true"], "tty": True}
                         ).json()["exec_id"]
            # out of a terminal's range: refused at the edge (422, naming the parameter)
            r = c.post(f"/containers/exec/{eid}/resize", params={"h": 70000, "w": 80})
            assert r.status_code == 422 and "'h'" in r.text, r.text
            r = c.post(f"/containers/{cid}/resize", params={"h": 24, "w": -1})
            assert r.status_code == 422 and "'w'" in r.text, r.text
            c.get(f"/containers/exec/{eid}/output").read()          # to its end
            r = c.post(f"/containers/exec/{eid}/input", content=b"x")
            assert 400 <= r.status_code < 500, r.text
        one_error(farm.cli("exec", "-i", cid, "/no/such/cmd"))
    finally:
        farm.cli("rm", "-f", cid)
