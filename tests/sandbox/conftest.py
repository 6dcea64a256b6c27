"""Fixtures for the sandbox tests: busybox rootfs lower dirs, a per-test overlay "box", and
guards that fail a test which leaves a mount or a process behind on the host."""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from minibox.sandbox import BlockOutcome, SandboxSpec, process, run_block

BUSYBOX = "/bin/busybox"
APPLETS = ("sh echo cat ls id mkdir touch sleep rm env pwd hostname ps readlink true false "
           "chmod ln stat wc kill seq head tail grep test printf mv cp").split()
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def make_busybox_rootfs(root: Path) -> Path:
    """A ~2 MB rootfs: /bin/busybox, applet symlinks, /etc/passwd and /etc/group."""
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for name in APPLETS:
        os.symlink("busybox", root / "bin" / name)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nwheel:x:10:app\napp:x:1000:\n")
    (root / "etc" / "motd").write_text("welcome\n")
    return root


def mount_table(under: str) -> list[str]:
    """The host's mounts that involve ``under`` (as mount point or in their options).

    Other people's tests on this machine mount things too; every mount the sandbox makes
    targets a path under the test's temp dir, so that is where a leak would show."""
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(ln.split()[4:]) for ln in f if under in ln)


def children_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def processes_in(ns_links: set[str]) -> set[tuple[int, int]]:
    """(pid, start time) of processes in, or making children in, the given namespaces."""
    found = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        for kind in ("uts", "pid", "pid_for_children"):
            try:
                if os.readlink(f"/proc/{d}/ns/{kind}").replace("_for_children", "") in ns_links:
                    found.add((int(d), start_time(int(d))))
                    break
            except OSError:
                pass
    return found


def wait_gone(procs: set[tuple[int, int]], timeout: float = 5.0) -> list[int]:
    """Wait until none of ``procs`` lives (pid and start time: namespace inode numbers, and
    pids, are reused by other processes on a busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid, start in procs if start_time(pid) == start]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


NS_PROBE = "readlink /proc/self/ns/uts; readlink /proc/self/ns/pid; echo ready; "


class CancelAtReady:
    """``should_cancel`` for a block whose step starts with NS_PROBE (output into ``out``):
    cancels once "ready" is out, noting the step's namespace links and who is in them."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.links: set[str] = set()
        self.seen: set[tuple[int, int]] = set()

    def __call__(self) -> bool:
        if b"ready" not in self.out:
            return False
        self.links.update(self.out.decode().split()[:2])
        assert all(link.startswith(("uts:[", "pid:[")) for link in self.links)
        self.seen.update(processes_in(self.links))
        return True


@pytest.fixture(autouse=True)
def no_leaks(tmp_path_factory):
    """Every test must leave the host's mount table and process tree as it found them."""
    base = str(tmp_path_factory.getbasetemp())
    before = mount_table(base)
    kids = set(children_of(os.getpid()))     # other suites' session farms are children too
    yield
    assert mount_table(base) == before, "a sandbox mount leaked onto the host"
    # this process's sandbox zygote lives on (and is started by the first test), its
    # sandboxes must not
    zygote = zygote_pid()
    new = sorted(set(children_of(os.getpid())) - kids - {zygote})
    assert new == [], "a sandbox process outlived its test"
    if zygote:
        assert children_of(zygote) == [], "a sandbox process outlived its test"


def zygote_pid() -> int | None:
    from minibox.sandbox import zygote

    proc = zygote.handle().proc
    return proc.pid if proc is not None and proc.poll() is None else None


@pytest.fixture
def zygote_only():
    """For tests of the zygote itself: skipped when sandboxes fork from the worker."""
    if os.environ.get("MINIBOX_NO_ZYGOTE"):
        pytest.skip("MINIBOX_NO_ZYGOTE: no sandbox zygote")


@pytest.fixture(scope="session", autouse=True, params=["compiled-pid1", "python-pid1"])
def pid1(request, tmp_path_factory):
    """Every sandbox test runs with each RUN's PID 1 posix_spawned (``minimon --pid1``,
    built into a data root) and forked from the sandbox (the fallback: no data root to build
    it into).  This process and its sandbox zygote, restarted here, resolve it once, from
    MINIBOX_DATA_ROOT, which is set only while they do (nothing else sees it)."""
    from minibox.config import process_settings
    from minibox.sandbox import zygote

    root = tmp_path_factory.mktemp("dataroot")
    compiled = request.param == "compiled-pid1"
    old = os.environ.get("MINIBOX_DATA_ROOT")
    os.environ["MINIBOX_DATA_ROOT"] = str(root if compiled else root / "absent")
    try:
        process_settings.cache_clear()
        process._compiled.clear()
        process.prepare()
        handle = zygote.handle()
        with handle.lock:
            handle._stop()
            handle._start()
    finally:
        if old is None:
            os.environ.pop("MINIBOX_DATA_ROOT", None)
        else:
            os.environ["MINIBOX_DATA_ROOT"] = old
        process_settings.cache_clear()
    if compiled and process._compiled[0] is None:
        pytest.skip("no compiled PID 1 here (no C compiler?)")
    assert (process._compiled[0] is not None) == compiled
    yield request.param
    process._compiled.clear()


@pytest.fixture(params=["tini", "python"])
def init(request, monkeypatch):
    """Each RUN's PID 1: tini-static from the host, or the Python fallback (then the
    sandbox is forked from this process, where the patch is, not from the zygote)."""
    if request.param == "python":
        monkeypatch.setattr(process, "host_init", lambda: None)
        monkeypatch.setenv("MINIBOX_NO_ZYGOTE", "1")
    elif process.host_init() is None:
        pytest.skip("no tini-static on this host")
    return request.param


@pytest.fixture(scope="session", autouse=True)
def build_network(tmp_path_factory):
    """This session's own build network (bridge, subnet, chains), removed at the end."""
    from minibox.config import Settings
    from minibox.net import buildnet
    from tests import netkit

    root = tmp_path_factory.mktemp("netroot")
    env = netkit.net_env(str(root))
    settings = Settings.from_env({**env, "MINIBOX_DATA_ROOT": str(root)})
    pool = None
    try:
        pool = buildnet.configure(settings)
        yield settings
    finally:
        if pool is not None:
            pool.close()
        netkit.cleanup(env, str(root))


@pytest.fixture(scope="session")
def busybox_lower(tmp_path_factory) -> str:
    return str(make_busybox_rootfs(tmp_path_factory.mktemp("bblower") / "root"))


@dataclass
class Result:
    outcome: BlockOutcome
    output: bytes
    events: list[dict] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.output.decode()


class Box:
    """An empty upper/work/scratch trio over some lower dirs, for one run_block call."""

    def __init__(self, base: Path, lowers: list[str]):
        self.base = base
        self.lowers = lowers
        self.upper = base / "upper"
        self.work = base / "work"
        self.scratch = base / "scratch"
        self.context = base / "context"
        for d in (self.upper, self.work, self.scratch, self.context):
            d.mkdir(parents=True, exist_ok=True)

    def spec(self, steps: list[dict], **kw) -> SandboxSpec:
        kw.setdefault("context_dir", str(self.context))
        return SandboxSpec(lower_dirs=self.lowers, upper_dir=str(self.upper),
                           work_dir=str(self.work), scratch_dir=str(self.scratch),
                           steps=steps, **kw)

    def run(self, steps: list[dict], should_cancel=None, **kw) -> Result:
        out = bytearray()
        events: list[dict] = []
        outcome = run_block(self.spec(steps, **kw), out.extend, events.append, should_cancel)
        return Result(outcome, bytes(out), events)

    def upper_entries(self) -> list[str]:
        return sorted(str(p.relative_to(self.upper)) for p in self.upper.rglob("*"))

    def is_whiteout(self, rel: str) -> bool:
        st = os.lstat(self.upper / rel)
        return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@pytest.fixture
def box(tmp_path, busybox_lower) -> Box:
    return Box(tmp_path / "box", [busybox_lower])


@pytest.fixture
def make_box(tmp_path):
    n = [0]

    def make(lowers: list[str]) -> Box:
        n[0] += 1
        return Box(tmp_path / f"box{n[0]}", lowers)
    return make


def run_step(command: str, line: int = 1, user: str = "", workdir: str = "/",
             env: dict | None = None, argv: list | None = None) -> dict:
    return {"op": "run", "line": line, "command": command, "argv": argv,
            "env": {"PATH": PATH} if env is None else env, "workdir": workdir, "user": user}
