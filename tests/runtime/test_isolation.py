"""Isolation probes: each must be denied inside a container, and each is harmless if not
(see tests/runtime/probe.c)."""

from __future__ import annotations

import os

import pytest

from tests.runtime.conftest import run_ok

DOCKER_DEFAULT_CAPS = 0xA80425FB


def probe_run(farm, probe, *args, extra=()):
    return run_ok(farm, "run", "--rm", "-v", f"{probe}:/probe:ro", *extra, "busybox",
                  "/probe/probe", *args).strip()


@pytest.mark.parametrize("what", ["mount", "clock", "sethostname", "unshare", "userns",
                                  "setns", "ptrace", "keyctl", "personality"])
def test_probe_denied(farm, probe, what):
    out = probe_run(farm, probe, what)
    assert out.startswith("denied"), out


def test_clone3_answers_enosys(farm, probe):
    assert probe_run(farm, probe, "clone3") == "enosys"


def test_created_device_is_unusable(farm, probe):
    st = os.stat("/")
    out = probe_run(farm, probe, "device", str(os.major(st.st_dev)), str(os.minor(st.st_dev)))
    assert out.startswith("denied"), out


def test_capabilities_nnp_seccomp(farm):
    out = run_ok(farm, "run", "--rm", "busybox", "grep", "-E", "^(Cap|NoNewPrivs|Seccomp:)",
                 "/proc/self/status")
    fields = dict(line.split(":\t") for line in out.strip().splitlines())
    assert int(fields["CapEff"], 16) == DOCKER_DEFAULT_CAPS
    assert int(fields["CapBnd"], 16) == DOCKER_DEFAULT_CAPS
    assert int(fields["CapInh"], 16) == 0 and int(fields["CapAmb"], 16) == 0
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2"
    out = run_ok(farm, "run", "--rm", "-u", "1000", "busybox", "grep", "CapEff",
                 "/proc/self/status")
    assert int(out.split()[1], 16) == 0


def test_cap_drop_and_add(farm):
    out = run_ok(farm, "run", "--rm", "--cap-drop", "ALL", "--cap-add", "CHOWN", "busybox",
                 "grep", "CapEff", "/proc/self/status")
    assert int(out.split()[1], 16) == 1


def test_masked_and_readonly_paths(farm):
    masked = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
              if os.path.exists(p)]
    assert masked, "this kernel has none of the masked files"
    script = "; ".join(f"wc -c < {p}" for p in masked)
    script += ("; v=$(cat /proc/sys/vm/swappiness); (echo $v > /proc/sys/vm/swappiness) 2>&1;"
               " touch /sys/probe 2>&1; ls /sys/firmware | wc -l")
    lines = run_ok(farm, "run", "--rm", "busybox", "sh", "-c", script).strip().splitlines()
    assert [x.strip() for x in lines[:len(masked)]] == ["0"] * len(masked)
    rest = lines[len(masked):]
    assert "Read-only" in rest[0] and "Read-only" in rest[1]
    assert rest[2].strip() == "0"


def test_namespaces_and_rootfs(farm):
    out = run_ok(farm, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
                 "echo $$; ls /proc | grep -c '^[0-9]'; ip link 2>/dev/null | grep -c '^[0-9]'; "
                 "cat /proc/1/cmdline | tr '\\0' ' '; echo; grep -c . /proc/self/mountinfo; "
                 "cat /etc/resolv.conf; ls -d /dev/pts /dev/shm /dev/mqueue")
    lines = out.splitlines()
    assert lines[0] != "1"                      # sh is tini's child
    assert int(lines[1]) <= 4                   # only our processes
    assert lines[2] == "1"                      # only lo
    assert lines[3].startswith("/dev/init -- sh")
    assert "network none" in out
    host_mounts = sum(1 for _ in open("/proc/self/mountinfo"))
    assert int(lines[4]) < host_mounts + 40


def test_no_mount_leaks_on_host(farm):
    """The rootfs is mounted inside the container's mount namespace only: the host (and
    the worker's namespace) never sees it, even while the container runs."""
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "30").strip()
    worker = farm.procs["worker"].pid
    for ns_of in ("self", str(worker)):
        assert str(farm.root) not in open(f"/proc/{ns_of}/mountinfo").read()
    run_ok(farm, "rm", "-f", cid)


def test_privileged_and_unconfined(farm):
    out = run_ok(farm, "run", "--rm", "--security-opt", "seccomp=unconfined", "busybox",
                 "grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status")
    fields = dict(line.split(":\t") for line in out.strip().splitlines())
    assert fields["Seccomp"] == "0" and fields["NoNewPrivs"] == "1"
    out = run_ok(farm, "run", "--rm", "--privileged", "busybox", "grep", "-E",
                 "^(CapEff|Seccomp):", "/proc/self/status")
    fields = dict(line.split(":\t") for line in out.strip().splitlines())
    engine = int(open("/proc/self/status").read().split("CapBnd:\t")[1].split()[0], 16)
    assert int(fields["CapEff"], 16) == engine and fields["Seccomp"] == "0"


def test_sysctl_namespaced(farm):
    path = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
    host_before = open(path).read()
    out = run_ok(farm, "run", "--rm", "--sysctl", "net.ipv4.ip_unprivileged_port_start=80",
                 "busybox", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert out.strip() == "80"
    assert open(path).read() == host_before          # the host's value is untouched


def test_pid1_is_tini_bind_mounted_read_only(farm):
    """PID 1 is tini-static from a read-only bind at /dev/init: the host's binary cannot be
    opened for writing through /proc/1/exe (harmless: `>>` writes nothing even if it opens)."""
    out = run_ok(farm, "run", "--rm", "busybox", "sh", "-c",
                 "readlink /proc/1/exe; grep ' /dev/init ' /proc/self/mountinfo; "
                 "(exec 3>>/proc/1/exe) 2>&1; echo rc=$?")
    lines = out.strip().splitlines()
    assert lines[0] == "/dev/init"
    assert " ro," in lines[1] or lines[1].split()[5].startswith("ro"), lines[1]
    assert ("Read-only file system" in out or "Text file busy" in out) and lines[-1] != "rc=0"
