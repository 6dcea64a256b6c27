"""The zygote runs each block's sandbox in its own process: after every block (done, failed,
cancelled, a failing COPY, on each network) it is back in its own namespaces with its own
mounts, fds and process state, and the next block sees nothing of the previous one."""

from __future__ import annotations

import json
import os
import signal

import pytest

from minibox import kernel
from minibox.errors import BuildFailed, Cancelled, UserError
from minibox.sandbox import run_block, zygote
from minibox.sandbox.zygote import Home
from tests.sandbox.conftest import (NS_PROBE, CancelAtReady, processes_in, run_step,
                                    start_time, wait_gone)

_STATUS = ("Name", "Umask", "Threads", "SigBlk", "SigIgn", "SigCgt", "NoNewPrivs", "CapEff")


def zygote_state(pid: int, under: str) -> dict:
    """What a block could leave behind in the zygote, read from outside it.  Mounts: those
    involving ``under`` (other engineers' tests mount elsewhere on this machine)."""
    proc = f"/proc/{pid}"
    with open(f"{proc}/mountinfo") as f:
        mounts = sorted(" ".join(ln.split()[4:]) for ln in f if under in ln)
    with open(f"{proc}/status") as f:
        status = {k: v.strip() for k, v in (ln.split(":", 1) for ln in f) if k in _STATUS}
    fds = sorted(os.readlink(f"{proc}/fd/{fd}") for fd in os.listdir(f"{proc}/fd"))
    return {"ns": {k: os.readlink(f"{proc}/ns/{k}") for k in os.listdir(f"{proc}/ns")},
            "mounts": mounts, "fds": fds, "status": status,
            "cwd": os.readlink(f"{proc}/cwd"), "root": os.readlink(f"{proc}/root")}


@pytest.fixture
def zyg(zygote_only, box, tmp_path_factory):
    """The running zygote's pid and its state after a first block (which opens what the
    sandbox code keeps open from its first use, e.g. process.py's PID namespace fd)."""
    handle = zygote.handle()
    handle.ensure()
    pid = handle.proc.pid
    base = str(tmp_path_factory.getbasetemp())
    fresh = zygote_state(pid, base)
    box.run([run_step("true")], network="none")
    assert handle.proc.pid == pid
    state = zygote_state(pid, base)
    assert {**state, "fds": None} == {**fresh, "fds": None}
    return pid, base, state


def _copy(sources, dest="/", frm=None, line=1) -> dict:
    return {"op": "copy", "line": line, "sources": sources, "dest": dest, "from": frm,
            "workdir": "/"}


def test_many_blocks_leave_nothing_behind_in_the_zygote(zyg, make_box, busybox_lower):
    pid, base, before = zyg
    assert before["status"]["Threads"] == "1"
    assert before["status"]["Name"] == zygote.NAME
    assert before["ns"]["pid_for_children"] == before["ns"]["pid"]

    def check(what: str) -> None:
        assert zygote.handle().proc.pid == pid, f"the zygote was replaced after {what}"
        assert zygote_state(pid, base) == before, f"{what} left something in the zygote"

    for network in ("none", "build", "host", "none", "build"):
        b = make_box([busybox_lower])
        (b.context / "f").write_text("x")
        r = b.run([_copy(["f"], "/f"), run_step("cat /f; cd /tmp; echo t > t", line=2),
                   {"op": "workdir", "line": 3, "path": "/w"}], network=network)
        assert r.text == "x"
        check(f"a block on network {network}")
    with pytest.raises(BuildFailed, match="RUN at line 4 exited with code 3"):
        make_box([busybox_lower]).run([run_step("exit 3", line=4)], network="none")
    check("a failed RUN")
    with pytest.raises(UserError):
        make_box([busybox_lower]).run([_copy(["missing"])], network="none")
    check("a failing COPY")
    with pytest.raises(BuildFailed, match="'nope' was not found"):
        make_box([busybox_lower]).run([run_step("", argv=["nope"], line=2)], network="build")
    check("a RUN that could not start")
    b = make_box([busybox_lower])
    b.run([_copy(["bin/busybox"], "/bb", frm="img")], network="none",
              copy_from={"img": [busybox_lower]})
    assert (b.upper / "bb").is_file()
    check("a COPY FROM (its read-only view mounted)")
    out = bytearray()
    with pytest.raises(Cancelled):
        run_block(make_box([busybox_lower]).spec([run_step("echo ready; sleep 30")],
                                                 network="build"),
                  out.extend, lambda e: None, lambda: b"ready" in out)
    check("a cancelled block")


def test_a_cancelled_block_ends_but_the_zygote_stays(zyg, make_box, busybox_lower):
    pid, base, before = zyg
    cancel = CancelAtReady()
    with pytest.raises(Cancelled, match="line 6"):
        run_block(make_box([busybox_lower]).spec([run_step(NS_PROBE + "sleep 30", line=6)],
                                                 network="none"),
                  cancel.out.extend, lambda e: None, cancel)
    me = (pid, start_time(pid))
    assert me in cancel.seen                              # it ran the block itself
    assert wait_gone(cancel.seen - {me}, 0) == []         # the step's processes: dead
    assert not processes_in(cancel.links) & cancel.seen   # the zygote: out of its namespaces
    assert zygote.handle().proc.pid == pid
    assert zygote_state(pid, base) == before
    assert make_box([busybox_lower]).run([run_step("echo again")]).text == "again\n"


def test_a_block_cannot_see_the_previous_blocks_files_hostname_or_tmp(zyg, make_box,
                                                                       busybox_lower):
    pid, base, before = zyg
    host = {k: os.readlink(f"/proc/self/ns/{k}") for k in ("mnt", "uts", "ipc", "net")}
    probe = ("hostname; for k in mnt uts ipc net; do readlink /proc/self/ns/$k; done; "
             "ls -a /tmp /dev/shm; test -e /left-by-one && echo SEEN-FILE; true")
    one = make_box([busybox_lower]).run([run_step(
        "echo one > /left-by-one; echo t > /tmp/left-by-one; echo s > /dev/shm/left-by-one; "
        + probe)], network="none", hostname="block-one")
    two = make_box([busybox_lower]).run([run_step(probe)], network="none",
                                         hostname="block-two")
    first, second = one.text.split(), two.text.split()
    assert first[0] == "block-one" and second[0] == "block-two"
    for lines in (first, second):                 # each block in namespaces of its own
        assert not set(lines[1:5]) & set(host.values()), lines
    assert "left-by-one" in first
    assert "left-by-one" not in second and "SEEN-FILE" not in second
    assert os.uname().nodename not in ("block-one", "block-two")
    assert zygote_state(pid, base) == before


def test_sigterm_between_blocks_is_ignored(zyg, make_box, busybox_lower):
    """A signal to the process group (a terminal's, a service manager's) is the worker's
    business; a cancel that comes late finds no block to end."""
    pid, base, before = zyg
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    assert make_box([busybox_lower]).run([run_step("echo fine")]).text == "fine\n"
    assert zygote.handle().proc.pid == pid
    assert zygote_state(pid, base) == before


def test_a_zygote_that_does_not_answer_is_killed_and_replaced(zyg, make_box, busybox_lower,
                                                              monkeypatch):
    pid, _base, _before = zyg
    monkeypatch.setattr(zygote, "REAP_WAIT", 1.0)
    out = bytearray()
    links: set = set()

    def cancel() -> bool:
        if b"ready" not in out:
            return False
        links.update(out.decode().split()[:1])
        os.kill(pid, signal.SIGSTOP)              # it cannot answer the cancel now
        return True
    b = make_box([busybox_lower])
    with pytest.raises(Cancelled):
        run_block(b.spec([run_step("readlink /proc/self/ns/pid; echo ready; sleep 30")],
                         network="none"), out.extend, lambda e: None, cancel)
    assert zygote.handle().proc is None           # SIGKILLed, reaped
    assert wait_gone(processes_in(links)) == []   # its step died with it (PDEATHSIG)
    assert make_box([busybox_lower]).run([run_step("echo new")]).text == "new\n"
    assert zygote.handle().proc.pid != pid


def test_home_puts_namespaces_and_state_back_and_notices_fds(tmp_path):
    """``Home`` on its own, in a forked (single-threaded) child: enter new namespaces, mount
    a tmpfs, change cwd, umask, handlers, hostname; restore; every one is back."""
    r, w = os.pipe()
    target = tmp_path / "mnt"
    target.mkdir()
    pid = os.fork()
    if pid == 0:                                   # pragma: no cover - the child
        result = {}
        try:
            os.close(r)
            home = Home()
            links = {k: os.readlink(f"/proc/self/ns/{k}") for k in ("mnt", "uts", "ipc", "net")}
            cwd, name = os.getcwd(), os.uname().nodename
            kernel.unshare(kernel.CLONE_NEWNS | kernel.CLONE_NEWUTS | kernel.CLONE_NEWIPC
                           | kernel.CLONE_NEWNET)
            kernel.make_private("/")
            kernel.sethostname("home-test")
            kernel.mount("tmpfs", str(target), "tmpfs", 0, "size=1m")
            os.chdir(str(target))
            os.umask(0o077)
            signal.signal(signal.SIGTERM, lambda *_: None)
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
            result["inside"] = os.path.ismount(str(target))
            leaked = os.open("/dev/null", os.O_RDONLY)
            result["restore"] = home.restore()
            result["ns_back"] = links == {k: os.readlink(f"/proc/self/ns/{k}") for k in links}
            result["host_back"] = os.uname().nodename == name
            result["mount_gone"] = not os.path.ismount(str(target))
            result["cwd_back"] = os.getcwd() == cwd
            result["umask_back"] = os.umask(0o022) == home.umask
            result["sig_back"] = signal.getsignal(signal.SIGTERM) == home.handlers[
                signal.SIGTERM] and signal.pthread_sigmask(signal.SIG_BLOCK, []) == home.mask
            result["cancelled_leak"] = home.check_fds(orderly=False)
            result["orderly_cache"] = home.check_fds(orderly=True)
            os.close(leaked)
            result["closed_own"] = home.check_fds(orderly=True)
        except BaseException as e:  # noqa: BLE001
            result["error"] = repr(e)
        finally:
            os.write(w, json.dumps(result).encode())
            os._exit(0)
    os.close(w)
    try:
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    got = json.loads(data)
    assert "error" not in got, got
    assert got["inside"] and got["restore"] is None
    assert all(got[k] for k in ("ns_back", "host_back", "mount_gone", "cwd_back",
                                "umask_back", "sig_back")), got
    assert "changed its open fds" in got["cancelled_leak"]
    assert got["orderly_cache"] is None            # a cache a module keeps: adopted
    assert "changed its open fds" in got["closed_own"]
    assert not os.path.ismount(target)
