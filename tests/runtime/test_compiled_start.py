"""The container start in both implementations (the ``direct_runtime`` fixture runs each test
with the Python monitor and init, and with the compiled ``minimon --start``): symlinks in the
image never take a mount out of the rootfs, host networking, sysctls, containers made before
the /etc contents came in the plan, bad input; and the compiled start's own protocol."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess

import pytest

from minibox.errors import UserError
from tests.runtime.volume_image import import_layered_image

ESCAPE = [("escape", "link", 0o777, 0, 0, "/var/tmp/minibox-escape-probe"),
          ("rel", "link", 0o777, 0, 0, "../../../../var/tmp/minibox-escape-probe")]


def _output(rt, st) -> tuple[int, str]:
    from minibox.runtime.io import logs
    from minibox.runtime.query import wait_exited
    res = wait_exited(rt.store, [st["id"]], 20)[st["id"]]
    d = str(rt.store.dir(st["id"]))
    out = b"".join(r[2] + (b"\n" if r[1] in ("stdout", "stderr") else b"")
                   for r in logs.read_records(d)).decode()
    return res["exit_code"], out


def test_mounts_through_image_symlinks_stay_inside_the_rootfs(direct_runtime, tmp_path):
    rt = direct_runtime
    host_dir = "/var/tmp/minibox-escape-probe"
    assert not os.path.exists(host_dir)
    import_layered_image(rt.data_root, "bb-escape", [ESCAPE])
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("bound\n")
    try:
        st = rt.run({"image": "bb-escape", "volumes": [f"{src}:/escape/in", f"{src}:/rel/in2"],
                     "tmpfs": ["/escape/t"], "network": "none",
                     "command": ["sh", "-c", "cat /escape/in/f /rel/in2/f; ls -d /escape/t"]})
        code, out = _output(rt, st)
        assert code == 0, out
        assert out.split() == ["bound", "bound", "/escape/t"]
        # the link's target was made inside the rootfs (in the upper dir), never on the host
        assert not os.path.exists(host_dir)
        upper = rt.store.dir(st["id"]) / "upper"
        assert (upper / "var/tmp/minibox-escape-probe/in").is_dir()
    finally:
        if os.path.isdir(host_dir):
            os.rmdir(host_dir)


def test_host_network_and_sysctls(direct_runtime):
    rt = direct_runtime
    st = rt.run({"image": "busybox", "network": "host", "command": ["sh", "-c", "ls /sys/class/net"]})
    code, out = _output(rt, st)
    assert code == 0 and "lo" in out.split(), out
    st = rt.run({"image": "busybox", "network": "none", "sysctls": {"kernel.msgmax": "4096"},
                 "command": ["sh", "-c", "cat /proc/sys/kernel/msgmax; ls -a /dev | grep -c sysctl"]})
    code, out = _output(rt, st)
    assert out.split() == ["4096", "0"], out
    assert code == 1          # grep -c found nothing: the private proc mount point is gone


def test_container_from_before_the_etc_contents_in_the_plan(direct_runtime):
    """Its /etc files are in its dir and config.json has no etc_files: they are bound."""
    rt = direct_runtime
    cid = rt.create({"image": "busybox", "network": "none", "hostname": "oldbox",
                     "command": ["sh", "-c", "cat /etc/hostname /etc/hosts"]})
    d = rt.store.dir(cid)
    cfg = json.loads((d / "config.json").read_text())
    files = cfg.pop("etc_files")
    for name, text in files.items():
        (d / name).write_text(text.replace("oldbox", "legacybox"))
    (d / "config.json").write_text(json.dumps(cfg))
    code, out = _output(rt, rt.start(cid))
    assert code == 0 and out.startswith("legacybox\n") and "legacybox" in out.split("\n", 1)[1]


def test_nul_bytes_are_refused_before_anything_is_made(direct_runtime):
    rt = direct_runtime
    before = set(rt.store.ids())
    for bad in ({"env": ["A=x\0y"]}, {"command": ["echo", "a\0b"]}):
        with pytest.raises(UserError, match="NUL|invalid environment"):
            rt.run({"image": "busybox", "network": "none", **bad})
    assert set(rt.store.ids()) == before


def test_minimon_start_rejects_a_malformed_spec(tmp_path):
    from minibox.runtime.start import minimon
    exe = minimon.path(tmp_path)
    if exe is None:
        pytest.skip("no C compiler")
    mem = os.memfd_create("spec")
    os.write(mem, b"MB1\0only\0a few\0tokens\0")
    os.lseek(mem, 0, os.SEEK_SET)
    mine, theirs = socket.socketpair()
    with mine:
        # as spawn._spawn_compiled does it (fds above 4 first, then onto 3 and 4)
        fds = [fcntl.fcntl(f, fcntl.F_DUPFD_CLOEXEC, 5) for f in (mem, theirs.fileno())]
        pid = os.posix_spawn(exe, [exe, "--start"], {}, file_actions=[
            (os.POSIX_SPAWN_DUP2, fds[0], 3), (os.POSIX_SPAWN_DUP2, fds[1], 4)])
        for f in [mem, *fds]:
            os.close(f)
        theirs.close()
        mine.settimeout(10)
        assert mine.recv(200) == b"E 1 monitor failed: a malformed start spec\n"
        # the intermediate exits at once; its child reported
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    r = subprocess.run([exe], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"usage: minimon --start" in r.stderr


def test_a_failed_step_names_the_containers_path_and_leaves_nothing(direct_runtime):
    from minibox.errors import MiniBoxError
    rt = direct_runtime
    before = set(rt.store.ids())
    with pytest.raises(MiniBoxError, match=r"container setup failed: mount tmpfs on /x: "
                                           r"Invalid argument"):
        rt.run({"image": "busybox", "network": "none", "tmpfs": ["/x:size=bogus"],
                "command": ["true"]})
    with pytest.raises(MiniBoxError, match=r"container setup failed: /etc/passwd/sub in the "
                                           r"image: Not a directory"):
        rt.run({"image": "busybox", "network": "none", "workdir": "/etc/passwd/sub",
                "command": ["true"]})
    assert set(rt.store.ids()) == before


@pytest.mark.parametrize("top", ["proc", "dev", "sys"])
def test_an_image_whose_proc_dev_or_sys_is_a_symlink_is_refused(direct_runtime, top):
    """Their paths are taken as root + path below the fresh mounts (masks, /dev/null, the
    /etc files): a symlink there could send them out of the rootfs."""
    from minibox.errors import MiniBoxError
    rt = direct_runtime
    probe = f"/var/tmp/minibox-{top}-probe"
    assert not os.path.exists(probe)
    import_layered_image(rt.data_root, f"bb-{top}-link", [[(top, "link", 0o777, 0, 0, probe)]])
    before = set(rt.store.ids())
    with pytest.raises(MiniBoxError, match=f"the image's /{top} is a symbolic link"):
        rt.run({"image": f"bb-{top}-link", "network": "none", "command": ["true"]})
    assert set(rt.store.ids()) == before and not os.path.exists(probe)


def test_a_monitor_that_cannot_be_executed_leaves_the_python_one(tmp_path):
    """A data root on a noexec mount: the compiled monitor is built but cannot run there."""
    from minibox.runtime.start import minimon
    if minimon.path(tmp_path / "a") is None:
        pytest.skip("no C compiler")
    root = tmp_path / "noexec"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=16m", "tmpfs", str(root)],
                   check=True)
    try:
        assert minimon.path(root) is None
        assert list((root / "run").glob("minimon-*"))     # built, but not usable
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_masked_and_read_only_paths_with_either_start(direct_runtime):
    """Read from the container's own mount table (a probe that changes nothing)."""
    rt = direct_runtime
    st = rt.run({"image": "busybox", "network": "none",
                 "command": ["sh", "-c", "cat /proc/self/mountinfo; wc -c < /proc/keys"]})
    code, out = _output(rt, st)
    assert code == 0, out
    mounts = {f[4]: f[5] for f in (line.split() for line in out.splitlines()) if len(f) > 5}
    assert mounts["/proc/sys"].startswith("ro") and mounts["/proc/irq"].startswith("ro")
    assert "/proc/keys" in mounts and "/sys/firmware" in mounts
    assert mounts["/sys"].startswith("ro") and mounts["/dev/init"].startswith("ro")
    assert out.split()[-1] == "0"                      # /proc/keys reads as /dev/null
