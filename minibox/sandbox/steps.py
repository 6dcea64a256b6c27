"""One build step at a time, inside the sandbox (runs in the sandbox process).

RUN, PKG and AUTO-DEPS become processes (process.py); COPY, WORKDIR and USER are Python
working on the merged overlay mount.  Failures are ``BuildFailed``/``UserError`` naming the
line; a failing process sets ``want_tail`` so the worker side attaches the output tail.
"""

from __future__ import annotations

import json
import os
from typing import Callable

from minibox.errors import BuildFailed
from minibox.sandbox import copyops, pkg, process, rootfs, sources, users
from minibox.sandbox.mounts import Mounts

NO_SHELL = ("RUN needs /bin/sh in the image; BASE scratch has no shell — use COPY, or the "
            "JSON form RUN [\"/path\", ...]")


class ProcessFailed(BuildFailed):
    """A RUN/PKG/AUTO-DEPS process exited non-zero; the worker adds the output tail."""

    want_tail = True


def describe(step: dict) -> str:
    op = step["op"]
    if op == "run":
        return "RUN " + (json.dumps(step["argv"]) if step.get("argv") else step["command"])
    if op == "copy":
        frm = f"FROM={step['from']} " if step.get("from") else ""
        return f"COPY {frm}{' '.join(step['sources'])} {step['dest']}"
    if op == "workdir":
        return f"WORKDIR {step['path']}"
    if op == "user":
        return f"USER {step['user']}"
    if op == "pkg":
        return "PKG " + " ".join(step["packages"])
    return "AUTO-DEPS"


class StepRunner:
    def __init__(self, spec, mounts: Mounts, out_fd: int, emit: Callable[[dict], None]):
        self.spec = spec
        self.mounts = mounts
        self.root = mounts.root
        self.out_fd = out_fd
        self.emit = emit

    def run(self, step: dict) -> None:
        getattr(self, "_op_" + step["op"])(step)

    # --- ops -------------------------------------------------------------------------------
    def _op_run(self, step: dict) -> None:
        if step.get("argv"):
            self._exec(step, [str(a) for a in step["argv"]], "RUN")
        else:
            self._shell(step, step["command"], "RUN")

    def _op_copy(self, step: dict) -> None:
        line, frm = step["line"], step.get("from")
        if frm:
            src_root = self.mounts.from_root(frm)
            srcs = sources.from_sources(src_root, frm, step["sources"], line)
        else:
            srcs = sources.context_sources(self.spec.context_dir, step["sources"], line)
        copyops.copy_sources(self.root, srcs, step["sources"], step["dest"],
                             _abs(step.get("workdir")), keep_owner=bool(frm), line=line)

    def _op_workdir(self, step: dict) -> None:
        """Create the path; with a USER in effect the directories made are owned by it,
        as BuildKit does, so the user can write into its own WORKDIR."""
        created: list[str] = []
        self._mkdir(_abs(step["path"]), step["line"], "WORKDIR", created)
        if step.get("user") and created:
            creds = users.resolve_user(self.root, step["user"], step["line"])
            for d in created:
                os.chown(d, creds.uid, creds.gid)

    def _op_user(self, step: dict) -> None:
        users.resolve_user(self.root, step["user"], step["line"])

    def _op_pkg(self, step: dict) -> None:
        command = pkg.install_command(self.root, list(step["packages"]), step["line"])
        self.emit({"type": "log", "line": step["line"], "text": f"PKG: running {command}"})
        self._shell(step, command, "PKG", user="root")

    def _op_autodeps(self, step: dict) -> None:
        line, workdir = step["line"], _abs(step.get("workdir"))
        path = (step.get("env") or {}).get("PATH", process.DEFAULT_PATH)
        found = pkg.autodeps_commands(self.root, workdir, path)
        if not found:
            self.emit({"type": "warning", "line": line,
                       "text": f"AUTO-DEPS: no package.json, requirements.txt, go.mod or "
                               f"Cargo.toml in {workdir}; nothing to install"})
        for manifest, command in found:
            self.emit({"type": "log", "line": line,
                       "text": f"auto-deps: found {manifest}, running {command}"})
            self._shell(step, command, f"AUTO-DEPS ({command})")

    # --- processes -------------------------------------------------------------------------
    def _shell(self, step: dict, command: str, what: str, user: str | None = None) -> None:
        if not rootfs.find_executable(self.root, "/bin/sh", ""):
            raise BuildFailed(f"line {step['line']}: {NO_SHELL}")
        self._exec(step, ["/bin/sh", "-c", command], what, user)

    def _exec(self, step: dict, argv: list[str], what: str, user: str | None = None) -> None:
        line = step["line"]
        env = {str(k): str(v) for k, v in (step.get("env") or {}).items()}
        workdir = _abs(step.get("workdir"))
        creds = users.resolve_user(self.root, step.get("user") if user is None else user, line)
        search = env.get("PATH", process.DEFAULT_PATH)
        found = rootfs.find_executable(self.root, argv[0], search)
        if found is None:
            raise BuildFailed(f"{what} at line {line}: '{argv[0]}' was not found in the image"
                              + ("" if "/" in argv[0] else f" (PATH={search})"))
        if "PATH" not in env:                      # the init would search its own default
            argv = [found] + argv[1:]
        self._mkdir(workdir, line, what)
        proc, binds = self.mounts.run_binds()
        plan = process.ExecPlan(self.root, proc, binds, self.mounts.init, argv, env, workdir,
                                creds.uid, creds.gid, creds.groups)
        code, err = process.run(plan, self.out_fd)
        if err:
            raise BuildFailed(f"{what} at line {line}: cannot start {argv[0]!r}: {err}")
        if code:
            raise ProcessFailed(f"{what} at line {line} exited with code {code}")

    def _mkdir(self, path: str, line: int, what: str, created: list | None = None) -> None:
        try:
            rootfs.mkdir_p(self.root, path, created=created)
        except OSError as e:
            raise BuildFailed(f"{what} at line {line}: cannot create {path}: "
                              f"{e.strerror or e}") from None


def _abs(path: str | None) -> str:
    return "/" + os.path.normpath("/" + (path or "/")).lstrip("/")
