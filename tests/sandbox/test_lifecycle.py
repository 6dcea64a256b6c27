"""The sandbox's life: worker unchanged, cancellation, SIGKILL of the worker, the spec."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from minibox.errors import Cancelled, UserError
from minibox.net import buildnet
from minibox.sandbox import BlockOutcome, SandboxSpec, run_block
from tests.sandbox.conftest import (NS_PROBE, CancelAtReady, children_of, processes_in,
                                    run_step, start_time, wait_gone, zygote_pid)

def worker_state() -> dict:
    from minibox.sandbox import zygote

    zygote.handle().ensure()         # long-lived, like the worker's Redis connection
    return {"cwd": os.getcwd(), "umask": os.umask(os.umask(0)),
            "ns": {k: os.readlink(f"/proc/self/ns/{k}") for k in os.listdir("/proc/self/ns")},
            "fds": sorted(os.listdir("/proc/self/fd")), "host": os.uname().nodename,
            "sig": [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGCHLD,
                                                  signal.SIGINT, signal.SIGPIPE)]}


def test_worker_process_comes_out_unchanged(box):
    buildnet.pool().wait_idle()
    before = worker_state()
    box.run([run_step("echo hi; cd /tmp")], network="none")
    assert worker_state() == before


def test_worker_comes_out_unchanged_from_the_build_network(box):
    """The pool of prepared namespaces swaps the one used for a fresh one: same fd count."""
    pool = buildnet.pool()
    box.run([run_step("true")], network="build")    # the pool filled, its netlink sockets
    pool.wait_idle()                                 # made (once per process and thread)
    before = worker_state()
    box.run([run_step("echo hi; cd /tmp")], network="build")
    pool.wait_idle()
    after = worker_state()
    assert len(after.pop("fds")) == len(before.pop("fds"))
    assert after == before


def test_should_cancel_kills_the_sandbox(box):
    cancel = CancelAtReady()
    start = time.monotonic()
    with pytest.raises(Cancelled, match="line 5"):
        run_block(box.spec([run_step(NS_PROBE + "sleep 30", line=5)]), cancel.out.extend,
                  lambda e: None, cancel)
    assert time.monotonic() - start < 20     # killed, not waited for (sleep 30); slack for load
    assert len(cancel.seen) >= 3            # the sandbox (the zygote), the init, sh and sleep
    zygote = {p for p in cancel.seen if p[0] == zygote_pid()}   # lives on, out of the block
    assert wait_gone(cancel.seen - zygote, 0) == []
    assert not processes_in(cancel.links) & cancel.seen


def test_failing_callback_still_cleans_up(box):
    def boom(_data):
        raise RuntimeError("consumer went away")
    with pytest.raises(RuntimeError, match="consumer went away"):
        run_block(box.spec([run_step("echo hi; sleep 30")]), boom, lambda e: None)


def test_sigkill_of_the_worker_leaves_no_process_and_no_mount(box):
    r, w = os.pipe()
    spec = box.spec([run_step(NS_PROBE + "sleep 30")])
    pid = os.fork()
    if pid == 0:                                       # the "worker"
        try:
            os.close(r)
            run_block(spec, lambda b: os.write(w, b), lambda e: None)
        finally:
            os._exit(0)
    os.close(w)
    buf = b""
    try:
        while b"ready" not in buf:
            chunk = os.read(r, 4096)
            assert chunk, "the sandbox never started"
            buf += chunk
        links = set(buf.decode().split()[:2])
        assert all(link.startswith(("uts:[", "pid:[")) for link in links)
        procs = processes_in(links)
        assert len(procs) >= 3, "probe should see the live sandbox"
        zygotes = {(z, start_time(z)) for z in children_of(pid)}   # the worker's zygote
        assert len(zygotes) == 1, "the sandbox is forked from the worker's zygote"
        procs |= zygotes
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
    assert wait_gone(procs) == []


def test_spec_round_trips_through_json(box):
    spec = box.spec([run_step("true")], copy_from={"b": ["/x"]}, network="none")
    again = SandboxSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    out = BlockOutcome.from_dict(json.loads(json.dumps(box.run([run_step("true")])
                                                       .outcome.to_dict())))
    assert out.steps[0].op == "run"
    assert run_block(spec.to_dict() | {"copy_from": {}}, lambda b: None,
                     lambda e: None).steps


@pytest.mark.parametrize("change,match", [
    ({"network": "bridge"}, "unknown build network .bridge."),
    ({"upper_dir": "relative"}, "must be an absolute path"),
    ({"steps": [{"op": "explode", "line": 1}]}, "unknown op 'explode'"),
    ({"steps": [{"op": "copy", "line": 2, "sources": ["a"], "dest": "/", "from": "nope"}]},
     "FROM=nope is not in"),
    ({"hostname": "bad host"}, "invalid sandbox hostname"),
])
def test_invalid_specs_are_user_errors(box, change, match):
    with pytest.raises(UserError, match=match):
        run_block(SandboxSpec.from_dict(box.spec([]).to_dict() | change), lambda b: None,
                  lambda e: None)


def test_unknown_spec_field_is_refused(box):
    with pytest.raises(UserError, match="unknown fields: colour"):
        SandboxSpec.from_dict(box.spec([]).to_dict() | {"colour": "red"})


def test_works_when_the_worker_ignores_sigchld(box):
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        assert box.run([run_step("echo ok")]).text == "ok\n"
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGCHLD, old)


def test_large_output_is_streamed_whole(box):
    chunks: list[bytes] = []
    run_block(box.spec([run_step("seq 1 200000")]), chunks.append, lambda e: None)
    data = b"".join(chunks)
    assert len(chunks) > 1
    assert data == b"".join(b"%d\n" % i for i in range(1, 200001))


def test_a_dead_zygote_is_started_again(make_box, busybox_lower, zygote_only):
    """The sandbox is forked by a small pre-started zygote; if it dies, the next block
    starts a new one (and a block never depends on the old one)."""
    from minibox.sandbox import zygote

    assert make_box([busybox_lower]).run([run_step("echo one")]).text == "one\n"
    handle = zygote.handle()
    first = handle.proc.pid
    assert first in children_of(os.getpid())
    os.kill(first, signal.SIGKILL)
    handle.proc.wait()
    assert make_box([busybox_lower]).run([run_step("echo two")]).text == "two\n"
    assert handle.proc.pid != first and handle.proc.poll() is None
