"""Every command against a real daemon, with bad input: unknown containers, images and
volumes, bad flag values.  Each is one clear error line (and a hint), a non-zero exit, no
traceback; and completion offers the daemon's real names."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import run_ok
from tests.runtime.test_bad_input import host_snapshot, settled
from tests.test_cli_errors import one_error

NO_CONTAINER = [("logs", "nope"), ("logs", "-f", "nope"), ("exec", "nope", "true"),
                ("exec", "-i", "nope", "cat"), ("stop", "nope"), ("kill", "nope"),
                ("rm", "nope"), ("start", "nope"), ("restart", "nope"),
                ("stats", "--no-stream", "nope"), ("stats", "nope"), ("db", "shell", "nope"),
                ("inspect", "--type", "container", "nope")]

BAD = [
    (("inspect", "nope"), "no such container or image: nope"),
    (("inspect", "--type", "image", "nope"), "no such image: nope"),
    (("rmi", "nope"), "no such image"),
    (("rmi", "Bad Name!"), "no such image"),
    (("run", "-d", "nope-image", "true"), "not found"),
    (("run", "--rm", "nope-image", "true"), "not found"),
    (("db", "run", "nope-image"), "not found"),
    (("volume", "inspect", "nope"), "no such volume"),
    (("volume", "rm", "nope"), "no such volume"),
    (("volume", "create", "bad name!"), "field 'name'"),
    (("ps", "--filter", "bogus"), "invalid filter"),
    (("logs", "--since", "yesterday", "nope"), "invalid --since"),
    (("run", "--rm", "-m", "99999999999g", "busybox", "true"), "too large"),
    (("run", "-d", "-m", "1" + "0" * 400, "busybox", "true"), "field 'memory'"),
    (("run", "--rm", "--shm-size", "99999999999g", "busybox", "true"), "--shm-size"),
    (("run", "--rm", "--log-opt", "max-size=9" * 3, "busybox", "true"), "--log-opt"),
    (("run", "--rm", "--pids-limit", "9" * 30, "busybox", "true"), "field 'pids_limit'"),
    (("run", "--rm", "--cpus", "1e400", "busybox", "true"), "out of range"),
    (("run", "--rm", "-c", "9" * 30, "busybox", "true"), "field 'cpu_shares'"),
    (("run", "--rm", "--cpuset-cpus", "9999", "busybox", "true"), "does not have"),
    (("run", "--rm", "--health-cmd", "true", "--health-retries", "9" * 30, "busybox", "true"),
     "field 'health.retries'"),
    (("run", "--rm", "--env-file", "/nonexistent/env", "busybox", "true"), "env file"),
    (("run", "--rm", "--security-opt", "bogus", "busybox", "true"), "--security-opt"),
    (("run", "--rm", "--entrypoint", "", "busybox"), "no default command"),
    (("db", "run", "-m", "99999999999g", "busybox"), "too large"),
]


@pytest.mark.parametrize("args", NO_CONTAINER, ids=[" ".join(a) for a in NO_CONTAINER])
def test_unknown_container(farm, args):
    line = one_error(farm.cli(*args), *args)
    assert "no such container: nope" in line, line


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a)[:50] for a, _ in BAD])
def test_bad_input(farm, args, message):
    mine = ("containers", "cgroups", "mounts")      # (process counts are the whole host's)
    before = host_snapshot(farm)
    line = one_error(farm.cli(*args), *args)
    assert message in line, line
    after = settled(farm, before)
    assert {k: after[k] for k in mine} == {k: before[k] for k in mine}


def test_bad_signal_and_exec_into_a_stopped_container(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "60").strip()
    try:
        line = one_error(farm.cli("kill", "-s", "NOPE", cid))
        assert "invalid signal 'NOPE'" in line
        run_ok(farm, "stop", "-t", "0", cid)
        line = one_error(farm.cli("exec", cid, "true"))
        assert "is not running" in line
    finally:
        farm.cli("rm", "-f", cid)


def test_completion_offers_the_daemons_names(farm):
    from tests.test_cli_errors import complete as complete_with
    up = run_ok(farm, "run", "-d", "--name", "walk-up", "busybox", "sleep", "60").strip()
    run_ok(farm, "run", "--name", "walk-done", "busybox", "true")
    run_ok(farm, "volume", "create", "walk-vol")
    try:
        def complete(words):
            return complete_with(words, farm.api, farm.root)
        logs = complete("minibox logs walk-")
        assert sorted(logs) == ["walk-done", "walk-up"], logs
        assert complete("minibox exec walk-") == ["walk-up"]     # running only
        assert complete("minibox run busyb") == ["busybox", "busybox:latest"]
        assert complete("minibox volume rm walk") == ["walk-vol"]
        assert complete("minibox run -v walk") == ["walk-vol"]
        assert complete("minibox run --network ")[:2] == ["none", "host"]
        assert "walk-up" in complete("minibox inspect walk")
        assert complete("minibox inspect --type image bu") == ["busybox",
                                                                         "busybox:latest"]
    finally:
        farm.cli("rm", "-f", up, "walk-done")
        farm.cli("volume", "rm", "walk-vol")


def test_output_cut_short_by_the_reader(farm):
    """`minibox run ... | head -1`: no traceback when the pipe closes (fast path and click)."""
    import subprocess
    import sys
    cid = run_ok(farm, "run", "-d", "busybox", "seq", "200000").strip()
    try:
        for args in (("run", "--rm", "busybox", "seq", "200000"), ("logs", "-f", cid)):
            p = subprocess.Popen([sys.executable, "-m", "minibox.cli.main", *args],
                                 env=farm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert p.stdout.readline() == b"1\n"
            p.stdout.close()                      # as `| head -1` does
            err = p.stderr.read()
            assert p.wait(60) != 0 and b"Traceback" not in err, err
    finally:
        farm.cli("rm", "-f", cid)
