"""RUN in the sandbox against a real kernel: output, env, user, isolation, overlay effects."""

from __future__ import annotations

import os
import shutil

import pytest

from minibox.errors import BuildFailed
from minibox.sandbox import process
from tests.sandbox.conftest import PATH, make_busybox_rootfs, run_step


def test_output_is_streamed_and_steps_reported(box):
    r = box.run([run_step("echo hello; echo oops >&2", line=4)])
    assert b"hello\n" in r.output and b"oops\n" in r.output
    assert r.events[0] == {"type": "step", "line": 4, "op": "run",
                           "text": "RUN echo hello; echo oops >&2"}
    assert [(s.line, s.op) for s in r.outcome.steps] == [(4, "run")]
    assert r.outcome.duration > 0 and r.outcome.setup_seconds > 0


def test_env_is_exactly_the_given_env(box, monkeypatch):
    monkeypatch.setenv("MINIBOX_WORKER_SECRET", "leak")
    r = box.run([run_step("env", env={"PATH": PATH, "GREETING": "hi there"})])
    lines = set(r.text.splitlines())
    assert "GREETING=hi there" in lines and f"PATH={PATH}" in lines
    assert "MINIBOX_WORKER_SECRET" not in r.text and "HOME=" not in r.text


def test_workdir_is_created_and_used(box):
    r = box.run([run_step("pwd; touch here", workdir="/srv/app")])
    assert r.text.strip() == "/srv/app"
    assert (box.upper / "srv/app/here").is_file()


@pytest.mark.parametrize("user,expect", [
    ("app", "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app)"),
    ("1000", "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app)"),
    ("4242", "uid=4242 gid=0(root) groups=0(root)"),
    ("app:wheel", "uid=1000(app) gid=10(wheel) groups=10(wheel)"),
    ("", "uid=0(root) gid=0(root) groups=0(root)"),
])
def test_user_by_name_or_id(box, user, expect):
    assert box.run([run_step("id", user=user)]).text.strip() == expect


def test_unknown_user_fails_naming_the_line(box):
    with pytest.raises(BuildFailed) as ei:
        box.run([run_step("id", line=9, user="ghost")])
    assert ei.value.message == "line 9: USER 'ghost' does not exist in the image's /etc/passwd"


def test_failing_run_reports_line_code_and_tail(box):
    with pytest.raises(BuildFailed) as ei:
        box.run([run_step("echo first", line=2),
                 run_step("seq 1 50; echo boom >&2; exit 3", line=7)])
    err = ei.value
    assert err.message == "RUN at line 7 exited with code 3"
    assert err.tail[-1] == "boom" and err.tail[-2] == "50" and len(err.tail) == 20
    assert "first" not in err.tail
    assert "boom" in err.hint


def test_exec_form_resolves_argv0_on_path(box):
    r = box.run([run_step("", argv=["echo", "exec", "form"])])
    assert r.text == "exec form\n"
    with pytest.raises(BuildFailed, match="'nope' was not found in the image"):
        box.run([run_step("", argv=["nope"])])


def test_writes_land_in_upper_and_deletes_become_whiteouts(box):
    box.run([run_step("mkdir /data && echo hi > /data/f && rm /etc/motd")])
    assert (box.upper / "data/f").read_text() == "hi\n"
    assert box.is_whiteout("etc/motd")


def test_no_mount_stubs_in_upper(box):
    box.run([run_step("ls /proc/1 >/dev/null; echo x > /tmp/t; test -c /dev/null")])
    assert box.upper_entries() == []


def test_scratch_base_has_no_stubs_and_no_shell(make_box):
    scratch = make_box([])
    with pytest.raises(BuildFailed, match=r"RUN needs /bin/sh in the image; BASE scratch"):
        scratch.run([run_step("echo hi", line=3)])
    scratch = make_box([])
    shutil.copy2("/bin/busybox", scratch.context / "busybox")
    r = scratch.run([{"op": "copy", "line": 2, "sources": ["busybox"], "dest": "/bin/",
                      "from": None, "workdir": "/"},
                     run_step("", argv=["/bin/busybox", "echo", "json"], env={})])
    assert r.text == "json\n"
    assert scratch.upper_entries() == ["bin", "bin/busybox"]


def test_existing_hosts_file_is_not_touched(make_box, tmp_path):
    lower = make_busybox_rootfs(tmp_path / "withhosts")
    (lower / "etc/hosts").write_text("10.0.0.1 image-host\n")
    b = make_box([str(lower)])
    r = b.run([run_step("cat /etc/hosts; echo '1.2.3.4 x' >> /etc/hosts")])
    assert "image-host" not in r.text and "minibox-build" in r.text
    assert b.upper_entries() == []


def test_stub_behind_a_dangling_symlink_is_removed_with_its_copied_up_parents(make_box,
                                                                            tmp_path):
    lower = make_busybox_rootfs(tmp_path / "resolved")
    (lower / "run").mkdir()
    os.symlink("../run/systemd/resolve/stub-resolv.conf", lower / "etc/resolv.conf")
    b = make_box([str(lower)])
    r = b.run([run_step("cat /run/systemd/resolve/stub-resolv.conf")])
    with open("/etc/resolv.conf", "rb") as f:
        assert r.output == f.read()
    assert b.upper_entries() == []


def test_proc_shows_the_steps_pid_namespace(box, init):
    r = box.run([run_step("cat /proc/1/comm; ls /proc | grep -c '^[0-9]'")])
    comm, count = r.text.split()
    assert comm == {"tini": ".minibox-init", "python": "minibox-init"}[init]
    assert int(count) <= 4          # init, sh, ls, grep


def test_init_reports_exit_codes_and_kills_strays(box, init):
    r = box.run([run_step("sleep 1000 & echo started"),
                 run_step("ps -o comm | grep -c sleep || true"),
                 run_step("", argv=["echo", "exec"])])
    assert r.text.split() == ["started", "0", "exec"]
    with pytest.raises(BuildFailed, match="exited with code 137"):
        box.run([run_step("kill -9 $$")])
    with pytest.raises(BuildFailed, match="exited with code 4"):
        box.run([run_step("exit 4")])


def test_hostname_is_the_sandboxes(box):
    assert box.run([run_step("hostname")]).text.strip() == "minibox-build"
    assert os.uname().nodename != "minibox-build"
    b = box.run([run_step("hostname")], hostname="blk-a")
    assert b.text.strip() == "blk-a"


def test_resolv_conf_write_does_not_reach_the_host(box):
    with open("/etc/resolv.conf", "rb") as f:
        before = f.read()
    r = box.run([run_step("cat /etc/resolv.conf; echo 'nameserver 192.0.2.1' > /etc/resolv.conf")])
    assert r.output == before
    with open("/etc/resolv.conf", "rb") as f:
        assert f.read() == before
    assert box.upper_entries() == []


def test_sys_and_proc_sys_are_read_only_and_timer_list_is_masked(box):
    # harmless even if isolation failed: the hostname written is the sandbox's own, unchanged
    r = box.run([run_step("touch /sys/x 2>/dev/null || echo ro-sys; "
                          "echo minibox-build 2>/dev/null > /proc/sys/kernel/hostname "
                          "|| echo ro-proc-sys; wc -c < /proc/timer_list")])
    assert r.text.split() == ["ro-sys", "ro-proc-sys", "0"]


def test_dependency_layer_shadows_base(make_box, busybox_lower, tmp_path):
    dep = tmp_path / "dep"
    (dep / "etc").mkdir(parents=True)
    (dep / "etc/motd").write_text("from the dependency\n")
    b = make_box([str(dep), busybox_lower])          # top-most first
    assert b.run([run_step("cat /etc/motd")]).text == "from the dependency\n"


def test_tmp_is_shared_by_runs_of_a_block_but_not_committed(box):
    r = box.run([run_step("echo kept > /tmp/f"), run_step("cat /tmp/f; stat -c %a /tmp")])
    assert r.text.split() == ["kept", "1777"]
    assert box.upper_entries() == []


def test_network_none_has_only_loopback(box):
    r = box.run([run_step("ls /sys/class/net; cat /sys/class/net/lo/operstate")],
                network="none")
    assert r.text.split() == ["lo", "unknown"]


def test_capabilities_are_dropped_to_the_default_set(box):
    r = box.run([run_step("grep CapBnd /proc/self/status")])
    assert r.text.split()[1] == "00000000a80425fb"
