"""The start spec of the compiled monitor (``minimon --start``, mbstart.c and mbinit.c).

The worker turns a start plan into what the C start needs, every decision made in Python:
the monitor's arguments, the namespaces, the container's filesystem as steps
(``rootfs.steps``, which the Python init runs too), then the process (argv, env, user,
caps, seccomp, rlimits).  The encoding is a flat list of NUL-terminated tokens (see
mbstart.c ``parse`` for the order; ``rootfs.OP_FIELDS`` per step).
"""

from __future__ import annotations

import os
import resource

from minibox.errors import UserError
from minibox.runtime import logs, rootfs


def encode(plan: dict, tini_path: str) -> bytes:
    proc = plan["process"]
    env = dict(e.split("=", 1) for e in proc["env"])
    vols = list(plan.get("anonymous_volumes") or []) if plan.get("autoremove") else []
    ops = rootfs.steps(plan, tini_path)
    rl = []
    for name, (soft, hard) in (plan.get("rlimits") or {}).items():
        rl += [getattr(resource, name), soft, hard]
    tokens = [
        "MB1", plan["dir"], plan["data_root"], plan["id"], plan.get("name") or "",
        plan["run"], 1 if plan.get("autoremove") else 0,
        plan.get("log_max_size", logs.DEFAULT_MAX_SIZE), len(vols), *vols,
        len(plan["cgroup_dirs"]), *plan["cgroup_dirs"],
        rootfs.clone_flags(plan), int(bool(plan.get("tty"))), int(bool(plan.get("interactive"))),
        int(plan["network"] == "host"), plan.get("netns") or "", plan["hostname"],
        plan["rootfs"],
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

