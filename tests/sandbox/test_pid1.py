"""Each RUN's PID 1: the compiled ``minimon --pid1`` posix_spawned by the sandbox, or the
fork of it (every sandbox test runs with each, see the ``pid1`` fixture).  Here: what tells
them apart (nothing the user sees), and the compiled one's fallback."""

from __future__ import annotations

import os

import pytest

from minibox.errors import BuildFailed
from minibox.sandbox import process
from tests.sandbox.conftest import PATH, run_step


@pytest.fixture
def in_process(monkeypatch):
    """The sandbox forked from this process (where a patch of ``process`` is seen)."""
    monkeypatch.setenv("MINIBOX_NO_ZYGOTE", "1")


def test_each_run_is_the_compiled_pid1(box, pid1, in_process, monkeypatch, tmp_path):
    """The compiled PID 1 is what the sandbox starts: a wrapper around it, in its place,
    records each start (as PID 1 of the step's namespace) and execs it."""
    if pid1 != "compiled-pid1":
        pytest.skip("the forked PID 1 runs no program of its own")
    log = tmp_path / "starts"
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(f"#!/bin/sh\necho \"$$ $*\" >> {log}\nexec {process._compiled[0]} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(process, "_compiled", [str(wrapper), process._compiled[1]])
    r = box.run([run_step("echo one"), run_step("cat /proc/1/comm; echo $$")])
    assert r.text.split() == ["one", ".minibox-init", "2"]
    assert log.read_text().splitlines() == ["1 --pid1", "1 --pid1"]


def test_a_compiled_pid1_that_cannot_start_falls_back_to_the_fork(box, pid1, in_process,
                                                                  monkeypatch, tmp_path):
    monkeypatch.setattr(process, "_compiled", [str(tmp_path / "gone"), process._compiled[1]])
    r = box.run([run_step("echo one"), run_step("echo two")])
    assert r.text.split() == ["one", "two"]


def test_an_init_that_cannot_be_executed_is_reported_the_same(box, in_process, monkeypatch,
                                                              tmp_path):
    """The exec failure comes back through the error pipe, worded as os.execve's."""
    fake = tmp_path / "tini-static"
    fake.write_text("not a program\n")
    fake.chmod(0o644)
    monkeypatch.setattr(process, "host_init", lambda: str(fake))
    with pytest.raises(BuildFailed) as e:
        box.run([run_step("true", line=3)])
    assert str(e.value) == ("RUN at line 3: cannot start '/bin/sh': /dev/.minibox-init: "
                            "Permission denied")
    assert box.upper_entries() == []


@pytest.mark.parametrize("env,why", [
    ({"PATH": PATH, "X": "a\0b"}, "embedded null byte"),
    ({"PATH": PATH, "A=B": "c"}, "illegal environment variable name"),
])
def test_what_execve_cannot_take_is_refused_the_same(box, env, why):
    with pytest.raises(BuildFailed) as e:
        box.run([run_step("true", env=env)])
    assert str(e.value) == f"RUN at line 1: cannot start '/bin/sh': {why}"


def test_the_step_gets_dev_null_on_stdin_and_no_other_fd(box):
    """(The init's fds: what PID 1 handed down.)"""
    r = box.run([run_step("readlink /proc/1/fd/0; ls /proc/1/fd > /tmp/fds; echo $(cat /tmp/fds);"
                          " (echo x >&0) 2>/dev/null || echo no-write")])
    assert r.text.splitlines() == ["/dev/null", "0 1 2", "no-write"]


def test_the_compiled_pid1_comes_from_the_data_root_or_not_at_all(pid1, monkeypatch, tmp_path):
    """Built into an existing data root; an absent one gets nothing made in it;
    MINIBOX_PYTHON_MONITOR forces the fork (as it forces the Python monitor)."""
    from minibox import config
    from minibox.runtime.start import minimon

    if pid1 != "compiled-pid1":
        pytest.skip("(once is enough)")
    monkeypatch.setattr(minimon, "_cache", {})
    for env, want in [({}, "built"), ({"MINIBOX_PYTHON_MONITOR": "1"}, None)]:
        settings = config.Settings.from_env({"MINIBOX_DATA_ROOT": str(tmp_path), **env})
        monkeypatch.setattr(config, "process_settings", lambda s=settings: s)
        minimon._cache.clear()
        exe = process._compiled_pid1()
        if want:
            assert exe is not None and os.path.dirname(exe) == str(tmp_path / "run")
        else:
            assert exe is None
    absent = tmp_path / "absent"
    settings = config.Settings.from_env({"MINIBOX_DATA_ROOT": str(absent)})
    monkeypatch.setattr(config, "process_settings", lambda: settings)
    assert process._compiled_pid1() is None
    assert not absent.exists()


STATUS = ("Uid Gid Groups CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Seccomp "
          "Seccomp_filters Umask").split()


@pytest.mark.parametrize("user", ["", "app"])
def test_both_pid1s_leave_the_command_the_same_privileges(make_box, busybox_lower, pid1,
                                                          monkeypatch, user):
    """The same step run by each PID 1: the command's ids, capability sets, no_new_privs,
    seccomp mode and filters, umask, mounts and cwd are the same."""
    if pid1 != "compiled-pid1":
        pytest.skip("(compares both from here)")
    probe = ("grep -E '^(" + "|".join(STATUS) + "):' /proc/self/status; pwd; "
             "cut -d' ' -f4,5,6 /proc/self/mountinfo | sort")
    steps = [run_step(probe, user=user, workdir="/srv")]
    compiled = make_box([busybox_lower]).run(steps).text
    monkeypatch.setenv("MINIBOX_NO_ZYGOTE", "1")
    monkeypatch.setattr(process, "_compiled", [None, process._compiled[1]])
    forked = make_box([busybox_lower]).run(steps).text
    assert compiled == forked
    assert "Seccomp:\t2" in compiled and "NoNewPrivs:\t0" in compiled
