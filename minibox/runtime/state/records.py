"""Crash-safe container records under DataRoot/containers/<id>/.

Each file has one writer, so no two processes ever race on one file:
  config.json   the validated spec and the resolved process (0600: it holds env) - worker
  state.json    status, pid + its start time, times, run number - runtime worker
  exit.json     exit code, OOMKilled, finish time of run N - the container's monitor
  health.json   health status and last probe outputs - the health scheduler
Every write is minibox.atomic's (temp + rename: atomic against a crash of any process); the
fsync that makes it survive a power loss is either inline or, on the start path, done right
after by a background thread (``sync_later``), so the container does not wait for it.  Names are
unique through ``.names/<name>`` symlinks (created atomically: an existing one is a
Conflict).  ``Record.effective()`` merges the files and checks /proc (pid + start time, so
a reused pid is never taken for the container).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from minibox import kernel
from minibox.atomic import write_json
from minibox.errors import Conflict, NotFound, UserError
from minibox.rmtree import remove_tree

HEX = set("0123456789abcdef")


_SYNC_Q: "queue.SimpleQueue[list[str]] | None" = None
_SYNC_LOCK = threading.Lock()


def sync_later(paths: list) -> None:
    """fsync ``paths`` (files, then directories: list them in that order) in a background
    thread.  For records already written with temp + rename: a crash of any process sees
    the old or the new file either way; this only narrows what a power loss can lose (a
    power loss also kills every container, so their records are stale at once anyway)."""
    global _SYNC_Q
    with _SYNC_LOCK:
        if _SYNC_Q is None:
            _SYNC_Q = queue.SimpleQueue()
            threading.Thread(target=_syncer, args=(_SYNC_Q,), name="state-fsync",
                             daemon=True).start()
    _SYNC_Q.put([str(p) for p in paths])


SYNC_BATCH_S = 0.05


def _syncer(q) -> None:
    """fsync in batches: each fsync on ext4 commits the journal, and a commit stalls the
    metadata work of the next container's create (mkdir, rename) meanwhile; one batch
    every 50 ms pays for one commit however many containers started."""
    while True:
        batch = [q.get()]
        time.sleep(SYNC_BATCH_S)
        while True:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
        files, dirs = [], []
        for paths in batch:
            for p in paths:
                (dirs if os.path.isdir(p) else files).append(p)
        for p in dict.fromkeys(files + dirs):    # files first, then their directories
            try:
                fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)


def read_json(path: Path):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None   # half-written files never exist (rename), so this is damage: ignore


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X", b"x"):
        return None   # a zombie (or one being reaped: X, dead) has exited already
    return int(rest[19])


def alive(pid: int | None, start: int | None) -> bool:
    return bool(pid) and start is not None and proc_start_time(pid) == start


@dataclass
class Record:
    id: str
    dir: Path
    state: dict
    config: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.state.get("name", "")

    def effective(self) -> dict:
        """The state with the monitor's exit record and /proc folded in."""
        st = dict(self.state)
        ex = read_json(self.dir / "exit.json")
        if st.get("status") in ("running", "stopping"):
            if ex and ex.get("run") == st.get("run"):
                st.update(status="exited", exit_code=ex.get("exit_code"),
                          oom_killed=bool(ex.get("oom_killed")), finished_at=ex.get("finished_at"),
                          pid=0)
            elif not alive(st.get("pid"), st.get("pid_start")) and not alive(
                    st.get("monitor_pid"), st.get("monitor_start")):
                ex = read_json(self.dir / "exit.json")    # written just now?
                if ex and ex.get("run") == st.get("run"):
                    st.update(status="exited", exit_code=ex.get("exit_code"), pid=0,
                              oom_killed=bool(ex.get("oom_killed")),
                              finished_at=ex.get("finished_at"))
                elif not self.dir.exists():
                    st.update(status="removed", pid=0)    # --rm: see the tombstone
                else:
                    st.update(status="exited", exit_code=-1, pid=0,
                              error="the container's monitor died; its exit code is unknown")
        health = read_json(self.dir / "health.json")
        if health and health.get("run") == st.get("run"):
            st["health"] = {"status": health.get("status", "starting"),
                            "failing_streak": health.get("failing_streak", 0),
                            "log": health.get("log", [])}
        return st


class StateStore:
    def __init__(self, data_root: Path):
        self.root = Path(data_root) / "containers"
        self.names = self.root / ".names"
        self.tombs = self.root / ".exits"
        self.attach = self.root / ".attach"   # log links for attached runs (see service.run)
        self.mnt = self.root / ".rootfs"      # every container's overlay mount point (its own ns)

    def ensure(self) -> None:
        for d in (self.root, self.names, self.tombs, self.attach, self.mnt):
            d.mkdir(parents=True, exist_ok=True)
        # each container dir is a hierarchy of its own: spread them over ext4's block groups.
        # Where inodes are allocated near their parent, every new one (a start makes about
        # a dozen, with the overlay's work files) is searched for past the same pile of
        # recently deleted ones, which on an ext4 without a journal are skipped for minutes:
        # that search was ~5 ms of the runtime worker's CPU per start here (bench/RUNTIME.md).
        kernel.set_topdir(str(self.root))

    def dir(self, cid: str) -> Path:
        return self.root / cid

    # --- names ----------------------------------------------------------------------
    def claim_name(self, name: str, cid: str) -> None:
        try:
            os.symlink(cid, self.names / name)
        except FileExistsError:
            other = self.name_target(name)
            raise Conflict(f"the container name {name!r} is already in use by container "
                           f"{(other or '?')[:12]}",
                           hint="remove that container or choose another --name") from None

    def name_target(self, name: str) -> str | None:
        try:
            return os.readlink(self.names / name)
        except OSError:
            return None

    def release_name(self, name: str, cid: str) -> None:
        if name and self.name_target(name) == cid:
            try:
                os.unlink(self.names / name)
            except FileNotFoundError:
                pass

    def taken_names(self) -> set[str]:
        try:
            return set(os.listdir(self.names))
        except FileNotFoundError:
            return set()

    # --- records --------------------------------------------------------------------
    def ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root) if len(n) == 64 and set(n) <= HEX]
        except FileNotFoundError:
            return []

    def load(self, cid: str, with_config: bool = False) -> Record | None:
        d = self.dir(cid)
        st = read_json(d / "state.json")
        if st is None:
            return None
        cfg = read_json(d / "config.json") or {} if with_config else {}
        return Record(cid, d, st, cfg)

    def save_state(self, cid: str, state: dict, sync: bool = True) -> None:
        # sync=False: atomic now, durable through sync_later (the start path)
        write_json(self.dir(cid) / "state.json", state, durable=sync)

    def save_config(self, cid: str, config: dict, sync: bool = True) -> None:
        write_json(self.dir(cid) / "config.json", config, mode=0o600, durable=sync)

    def all(self) -> list[Record]:
        return [r for r in (self.load(c) for c in self.ids()) if r is not None]

    def resolve(self, ref: str) -> str:
        """A full id from an id, a unique id prefix or a name; NotFound otherwise."""
        ref = (ref or "").strip()
        if not ref:
            raise UserError("a container id or name is required")
        target = self.name_target(ref) if "/" not in ref and not ref.startswith(".") else None
        if target and (self.dir(target) / "state.json").exists():
            return target
        if set(ref) <= HEX:
            if len(ref) == 64 and (self.dir(ref) / "state.json").exists():
                return ref
            matches = [c for c in self.ids() if c.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise UserError(f"the id prefix {ref!r} matches {len(matches)} containers",
                                hint="give more characters of the id")
        raise NotFound(f"no such container: {ref}",
                       hint="`minibox ps -a` lists containers")

    def remove_dir(self, cid: str) -> None:
        remove_tree(self.dir(cid), ignore_errors=True)

    # --- tombstones: exit codes of auto-removed containers, kept a while for `run --rm` --
    def write_tomb(self, cid: str, data: dict) -> None:
        write_json(self.tombs / cid, data)

    def read_tomb(self, cid: str) -> dict | None:
        return read_json(self.tombs / cid)

    def prune_tombs(self, max_age: float = 600.0) -> None:
        self._prune(self.tombs, max_age)
        self._prune(self.attach, 60.0)     # links no reader picked up (the daemon died)

    @staticmethod
    def _prune(d: Path, max_age: float) -> None:
        now = time.time()
        for n in os.listdir(d) if d.exists() else []:
            p = d / n
            try:
                if now - p.stat().st_mtime > max_age:
                    p.unlink()
            except OSError:
                pass
