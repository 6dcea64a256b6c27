"""Container status as a small state machine (issue 9.2): the allowed transitions, illegal
ones refused with a clear error, and each transition persisted in state.json (read here
straight from the file, never through Record.effective)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from minibox.errors import Conflict
from minibox.runtime.state.status import TRANSITIONS, IllegalTransition, Status, check


def test_the_transitions():
    assert check("c", "created", Status.RUNNING) is Status.RUNNING
    assert check("c", "exited", Status.RUNNING) is Status.RUNNING
    assert check("c", "running", Status.EXITED) is Status.EXITED
    for current in ("created", "exited"):
        assert check("c", current, Status.REMOVING) is Status.REMOVING
    with pytest.raises(IllegalTransition, match="container web is already running"):
        check("web", "running", Status.RUNNING)
    with pytest.raises(IllegalTransition, match="container web is being removed"):
        check("web", "removing", Status.RUNNING)
    with pytest.raises(Conflict, match="container web is created: it cannot become exited"):
        check("web", "created", Status.EXITED)
    with pytest.raises(IllegalTransition, match="web is running"):
        check("web", "running", Status.REMOVING)
    assert check("web", "running", Status.REMOVING, force=True) is Status.REMOVING
    assert TRANSITIONS[Status.REMOVED] == frozenset()


def stored(rt, cid) -> dict:
    return json.loads((rt.store.dir(cid) / "state.json").read_text())


def wait_stored(rt, cid, status: str, timeout: float = 30.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = stored(rt, cid)
        if st["status"] == status:
            return st
        time.sleep(0.05)
    raise AssertionError(f"state.json never said {status}: {stored(rt, cid)}")


def test_each_transition_is_persisted_and_illegal_ones_are_refused(direct_runtime):
    rt = direct_runtime
    cid = rt.create({"image": "busybox", "name": "st-web", "command": ["sleep", "60"]})
    assert stored(rt, cid)["status"] == "created"
    st = rt.start(cid)
    assert stored(rt, cid)["status"] == "running" and stored(rt, cid)["run"] == st["run"] == 1
    with pytest.raises(IllegalTransition, match="st-web is already running"):
        rt.start(cid)
    with pytest.raises(IllegalTransition, match="st-web is running") as e:
        rt.remove(cid)
    assert "rm -f" in e.value.hint
    assert rt.kill(cid, signal.SIGKILL)
    # the exit, persisted by the worker once the monitor is done: no reader derives it
    ex = wait_stored(rt, cid, "exited")
    assert ex["exit_code"] == 137 and ex["pid"] == 0 and ex["run"] == 1
    assert rt.start(cid)["run"] == 2 and stored(rt, cid)["status"] == "running"
    rt.remove(cid, force=True)
    assert not rt.store.dir(cid).exists()


def test_a_removal_cut_short_is_finished_by_reconcile(direct_runtime):
    rt = direct_runtime
    cid = rt.create({"image": "busybox", "name": "st-half", "command": ["true"]})
    rt.store.save_state(cid, {**stored(rt, cid), "status": "removing"})    # a crash here
    assert rt.reconcile()["reconciled"] >= 1
    assert not rt.store.dir(cid).exists() and rt.store.name_target("st-half") is None
