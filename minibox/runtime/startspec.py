"""The start spec of the compiled monitor (``minimon --start``, mbstart.c and mbinit.c).

The worker turns a start plan into what the C start needs, every decision made here: the
monitor's arguments, the namespaces, and the container's filesystem as a list of steps
(``ops``) in the order rootfs.build takes them, then the process (argv, env, user, caps,
seccomp, rlimits).  The encoding is a flat list of NUL-terminated tokens (see mbstart.c
``parse`` for the order; ``OP_FIELDS`` per step).

A step's target is used as is (join ""), or resolved inside the container's rootfs with
every symlink kept inside it (rootfs.secure_join): join "n" resolves only, "d" makes the
missing directories, "f" makes the last component a file.  ``fail``: "e" the start fails,
"r" remove the target and go on (an optional mount), "a" the next step is the alternative
(run only if this one failed), "i" ignore.
"""

from __future__ import annotations

import os
import resource

from minibox import kernel as k
from minibox.errors import UserError
from minibox.runtime import logs, rootfs

OP_FIELDS = ("code", "src", "target", "join", "fstype", "data", "flags", "mode", "fail")
NS_FLAGS = k.CLONE_NEWNS | k.CLONE_NEWPID | k.CLONE_NEWUTS | k.CLONE_NEWIPC
NSND = rootfs.NOSUID_NODEV_NOEXEC


def op(code: str, target: str = "", *, src: str = "", join: str = "", fstype: str = "",
       data: str = "", flags: int = 0, mode: int = 0, fail: str = "e") -> tuple:
    return (code, src, target, join, fstype, data, flags, mode, fail)


def rootfs_ops(plan: dict, tini_path: str) -> list[tuple]:
    """rootfs.build as steps: overlay, volumes, /proc, /dev, /dev/init, /sys, /etc files,
    the working dir, masks, pivot_root, sysctls."""
    root = plan["rootfs"]
    out = [op("P")] + _overlay(plan) + _volumes(plan["mounts"])
    out.append(op("M", "/proc", join="d", src="proc", fstype="proc", flags=NSND))
    out += _dev(plan, tini_path)
    sys_fail = "a" if plan["network"] == "host" else "e"
    out.append(op("M", "/sys", join="d", src="sysfs", fstype="sysfs", flags=NSND | k.MS_RDONLY,
                  fail=sys_fail))
    if plan["network"] == "host":
        out.append(op("B", "/sys", join="d", src="/sys", flags=k.MS_REC, mode=1))
    out += _etc_files(plan)
    out.append(op("J", plan["process"]["cwd"] or "/", join="d"))
    if not plan.get("privileged"):
        out += _masks(root)
    out.append(op("V", root))
    if plan["sysctls"]:
        out.append(op("D", "/dev/.sysctl", mode=0o700))
        out.append(op("M", "/dev/.sysctl", src="proc", fstype="proc", flags=NSND))
        out += [op("W", "/dev/.sysctl/sys/" + key.replace(".", "/"), data=value)
                for key, value in plan["sysctls"].items()]
        out += [op("U", "/dev/.sysctl", flags=k.MNT_DETACH), op("R", "/dev/.sysctl")]
    return out


def _overlay(plan: dict) -> list[tuple]:
    # relative to the data root (we chdir there): overlay's options must fit in one page
    base = plan["data_root"]
    rel = [os.path.relpath(p, base) if p.startswith(base + "/") else p for p in plan["lowers"]]
    data = (f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(plan['upper'], base)},"
            f"workdir={os.path.relpath(plan['work'], base)}")
    return [op("C", base), op("M", plan["rootfs"], src="overlay", fstype="overlay", data=data),
            op("C", "/")]


def _volumes(mounts: list[dict]) -> list[tuple]:
    out = []
    for m in mounts:
        if m["kind"] == "tmpfs":
            out.append(op("M", m["target"], join="d", src="tmpfs", fstype="tmpfs",
                          flags=k.MS_NOSUID | k.MS_NODEV, data=m.get("options") or "mode=1777"))
            continue
        src = m["host_path"]
        out.append(op("B", m["target"], join="d" if os.path.isdir(src) else "f", src=src,
                      flags=k.MS_REC, mode=1 if m.get("readonly") else 0))
    return out


def _dev(plan: dict, tini_path: str) -> list[tuple]:
    out = [op("M", "/dev", join="d", src="tmpfs", fstype="tmpfs",
              flags=k.MS_NOSUID | k.MS_STRICTATIME, data="mode=755,size=65536k")]
    out += [op("N", f"/dev/{name}", join="n", flags=os.makedev(major, minor), mode=0o666)
            for name, major, minor in rootfs.DEVICES]
    out += [op("L", f"/dev/{name}", join="n", src=target) for name, target in rootfs.DEV_LINKS]
    out += [op("D", f"/dev/{d}", join="n", mode=0o755) for d in ("pts", "shm", "mqueue")]
    out.append(op("M", "/dev/pts", join="n", src="devpts", fstype="devpts",
                  flags=k.MS_NOSUID | k.MS_NOEXEC, data="newinstance,ptmxmode=0666,mode=0620,gid=5"))
    out.append(op("M", "/dev/shm", join="n", src="shm", fstype="tmpfs", flags=NSND,
                  data=f"mode=1777,size={plan['shm_size']}"))
    out.append(op("M", "/dev/mqueue", join="n", src="mqueue", fstype="mqueue", flags=NSND,
                  fail="r"))
    if plan.get("tty"):
        out.append(op("F", "/dev/console", join="n", mode=0o600))
    # tini, read-only at /dev/init (rootfs.mount_init)
    out.append(op("F", rootfs.INIT_PATH, join="n", mode=0o755))
    out.append(op("B", rootfs.INIT_PATH, join="n", src=tini_path,
                  flags=k.MS_NOSUID | k.MS_NODEV, mode=1))
    return out


def _etc_files(plan: dict) -> list[tuple]:
    contents = plan.get("etc_files")
    root = plan["rootfs"]
    out = []
    for name in ("hostname", "hosts", "resolv.conf"):
        if contents is None:      # a container made before the contents came in the plan
            out.append(op("E", f"/etc/{name}", join="f", src=os.path.join(plan["dir"], name),
                          mode=1))
        else:
            out.append(op("E", f"/etc/{name}", join="f", src=f"{root}/dev/.{name}",
                          data=contents.get(name, "")))
    return out


def _masks(root: str) -> list[tuple]:
    out = [op("m", root + p, src=root + "/dev/null") for p in rootfs.MASKED_FILES]
    out += [op("k", root + p, fstype="tmpfs", flags=k.MS_RDONLY | NSND, data="size=0")
            for p in rootfs.MASKED_DIRS]
    out += [op("r", root + p, flags=k.MS_REC | NSND) for p in rootfs.READONLY]
    return out


def encode(plan: dict, tini_path: str) -> bytes:
    proc = plan["process"]
    env = dict(e.split("=", 1) for e in proc["env"])
    vols = list(plan.get("anonymous_volumes") or []) if plan.get("autoremove") else []
    ops = rootfs_ops(plan, tini_path)
    rl = []
    for name, (soft, hard) in (plan.get("rlimits") or {}).items():
        rl += [getattr(resource, name), soft, hard]
    flags = NS_FLAGS | (0 if plan["network"] == "host" else k.CLONE_NEWNET)
    tokens = [
        "MB1", plan["dir"], plan["data_root"], plan["id"], plan.get("name") or "",
        plan["run"], 1 if plan.get("autoremove") else 0,
        plan.get("log_max_size", logs.DEFAULT_MAX_SIZE), len(vols), *vols,
        len(plan["cgroup_dirs"]), *plan["cgroup_dirs"],
        flags, int(bool(plan.get("tty"))), int(bool(plan.get("interactive"))),
        int(plan["network"] == "host"), plan["hostname"], plan["rootfs"],
        len(ops), *(x for o in ops for x in o),
        proc["cwd"] or "/", env.get("PATH", "/usr/bin:/bin"), rootfs.INIT_PATH,
        len(proc["argv"]), *proc["argv"],
        len(env), *(f"{key}={v}" for key, v in env.items()),
        proc["uid"], proc["gid"], len(proc.get("groups") or []), *(proc.get("groups") or []),
        plan["caps_mask"], int(bool(plan.get("privileged"))),
        int(bool(plan.get("no_new_privs", True))), (plan.get("seccomp") or b"").hex(),
        len(rl) // 3, *rl, plan.get("oom_score_adj", 0), "END",
    ]
    strs = [t if isinstance(t, str) else str(int(t)) for t in tokens]
    text = "\0".join(strs) + "\0"
    if text.count("\0") != len(strs):
        bad = next(t for t in strs if "\0" in t)
        raise UserError(f"a NUL byte in the container's configuration: {bad!r}",
                        hint="commands, environment and paths cannot contain NUL")
    return os.fsencode(text)

