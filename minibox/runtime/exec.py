"""Running commands in a container (``exec`` and healthchecks), from the daemon.

``exec_spec()`` builds what ``nsexec`` needs from the container's record: its pid, cgroup,
capabilities and seccomp, and the process (argv, env = the container's env + -e, cwd, user).
``spawn_exec()`` starts the helper with pipes or a PTY; ``run_capture()`` runs one to the end
with a timeout (healthchecks).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from minibox.errors import Conflict, UserError
from minibox.runtime.security import caps, seccomp
from minibox.runtime import images, process
from minibox.runtime.spec import parse_env
from minibox.wire.runtime import ContainerSpec
from minibox.runtime.state import Record, alive


def exec_spec(rec: Record, cmd: list[str], env=(), workdir: str | None = None,
              user: str | None = None, tty: bool = False) -> dict:
    st = rec.effective()
    if st["status"] != "running" or not alive(st.get("pid"), st.get("pid_start")):
        raise Conflict(f"container {rec.name} is not running",
                       hint=f"start it first: minibox start {rec.name}")
    if not cmd or not all(isinstance(c, str) for c in cmd):
        raise UserError("exec needs a command", hint="minibox exec CONTAINER COMMAND...")
    cfg = rec.config
    spec = ContainerSpec.from_dict(cfg["spec"])
    proc = dict(cfg["process"])
    if user is not None:
        image = images.ResolvedImage(spec.image, spec.image, "", {}, cfg["image"]["layers"])
        spec = dataclasses.replace(spec, user=user)
        proc["uid"], proc["gid"], proc["groups"], _ = process.user(spec, image)
    merged = {}
    for item in list(proc["env"]) + parse_env(list(env)):
        key, _, value = item.partition("=")
        merged[key] = value
    if tty:
        merged.setdefault("TERM", "xterm")
    proc.update(argv=list(cmd), env=[f"{k}={v}" for k, v in merged.items()])
    if workdir:
        if not workdir.startswith("/"):
            raise UserError(f"invalid working directory {workdir!r}", hint="it must be absolute")
        proc["cwd"] = workdir
    names = caps.container_caps(privileged=spec.privileged, add=spec.cap_add,
                                drop=spec.cap_drop, extra=caps.DB_EXTRA if spec.db_mode else ())
    mask = caps.mask_of(names) & caps.engine_mask()
    relax = frozenset(("mount", "umount", "umount2")) if "SYS_ADMIN" in names else frozenset()
    bpf = seccomp.compile_filter(relax) if spec.seccomp and not spec.privileged else b""
    return {"pid": st["pid"], "cgroup_dirs": (st.get("cgroup") or {}).get("dirs", []),
            "own_net": spec.network != "host", "process": proc, "caps_mask": mask,
            "privileged": spec.privileged, "tty": tty, "pids_limit": spec.pids_limit,
            "no_new_privs": spec.no_new_privileges and not spec.privileged,
            "seccomp_hex": bpf.hex()}


def spawn_exec(spec: dict, stdin=None, stdout=None, stderr=None) -> subprocess.Popen:
    """Start the helper; the spec goes through a pipe (never argv or env: it holds env)."""
    r, w = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "minibox.runtime.nsexec", str(r)],
                                stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=(r,),
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                start_new_session=not spec.get("tty"))
    finally:
        os.close(r)
    with os.fdopen(w, "wb") as f:
        f.write(json.dumps(spec).encode())
    return proc


def run_capture(spec: dict, timeout: float) -> tuple[int | None, bytes]:
    """Run to the end: (exit code or None on timeout, combined output, at most 4 KiB)."""
    proc = spawn_exec(spec, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out[-4096:]
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out[-4096:]
