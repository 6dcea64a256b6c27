"""What a RUN step is confined by: the containers' seccomp profile, masked and read-only
/proc and /sys paths, Docker's default capabilities.  Every probe is harmless even if the
confinement failed: it changes only the probing process itself or reads."""

from __future__ import annotations

import os

from minibox.runtime.start import rootfs
from tests.sandbox.conftest import run_step


def test_a_run_step_cannot_make_a_user_namespace(box, init):
    # as root and as a user: unprivileged user namespaces are open on this host
    r = box.run([run_step("unshare -U true 2>/dev/null && echo made || echo refused"),
                 run_step("unshare -U true 2>/dev/null && echo made || echo refused",
                          user="app")])
    assert r.text.split() == ["refused", "refused"]


def test_a_syscall_the_profile_denies_is_refused(box):
    # personality(ADDR_NO_RANDOMIZE) on itself (busybox `linux64 -R`): Docker's profile
    # refuses it; had it passed, only the probe's own address-space layout would change
    r = box.run([run_step("linux64 -R cat /proc/self/personality 2>&1 || echo refused; "
                          "linux64 cat /proc/self/personality")])
    lines = r.text.split("\n")
    assert "refused" in lines[1] or "refused" in lines[0], r.text
    assert "00040000" not in r.text
    assert lines[-2] == "00000000"


def test_proc_and_sys_paths_are_masked_as_in_containers(box):
    files = [p for p in rootfs.MASKED_FILES if os.path.isfile(p)]
    dirs = [p for p in rootfs.MASKED_DIRS if os.path.isdir(p)]
    assert "/sys/firmware" in dirs and "/proc/keys" in files   # this kernel has no kcore
    script = "; ".join([f"echo {p} $(wc -c < {p})" for p in files]
                       + [f"echo {p} $(ls -A {p} | wc -l)" for p in dirs])
    r = box.run([run_step(script)])
    sizes = dict(line.split() for line in r.text.splitlines())
    assert sizes == {p: "0" for p in files + dirs}


def test_proc_sys_and_friends_are_read_only(box):
    # each write puts back the value just read (harmless even if it went through)
    paths = [p for p in rootfs.READONLY if os.path.exists(p)]
    r = box.run([run_step(
        "v=$(cat /proc/sys/kernel/hostname); "
        "echo \"$v\" 2>/dev/null > /proc/sys/kernel/hostname && echo writable || echo ro; "
        + "; ".join(f"grep -q ' {p} ro,' /proc/self/mountinfo && echo ro-{p}"
                    for p in paths))])
    assert r.text.split() == ["ro"] + [f"ro-{p}" for p in paths]


def test_root_keeps_only_dockers_default_capabilities(box, init):
    r = box.run([run_step("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"),
                 run_step("grep -E '^Cap(Prm|Eff)' /proc/self/status", user="app")])
    caps = {}
    for line in r.text.splitlines():
        k, v = line.split()
        caps.setdefault(k, []).append(v)
    default = "00000000a80425fb"
    assert caps["CapBnd:"] == [default]
    assert caps["CapPrm:"] == [default, "0000000000000000"]
    assert caps["CapEff:"] == [default, "0000000000000000"]
    assert caps["CapInh:"] == caps["CapAmb:"] == ["0000000000000000"]


def test_seccomp_is_on_and_no_new_privs_off(box, init):
    r = box.run([run_step("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")])
    assert dict(line.split() for line in r.text.splitlines()) == {
        "Seccomp:": "2", "NoNewPrivs:": "0"}
