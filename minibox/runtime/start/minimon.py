"""The compiled monitor (minimon.c, mbstart.c, mbinit.c, mbpid1.c): built once per source
version into the data root.

A forked Python monitor costs megabytes of private memory per container (copy-on-write
pages its interpreter touches); the C one about 100 KiB, which is what makes 500 idle
containers fit in 500 MiB.  It also starts the container (``minimon --start``, see
spawn.py): the init's namespaces, rootfs and privileges set up in C cost a third of what
the forked Python ones did.  And it is each build RUN step's PID 1 (``minimon --pid1``,
see minibox/sandbox/process.py), posix_spawned by the sandbox instead of a fork of it.
``path()`` compiles it with the system C compiler on first use (``cc -O2 -static``, or
without ``-static``; about half a second) and returns None when there is no compiler, in
which case the Python monitor (monitor.py) does the same job.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from minibox import kernel

HERE = Path(__file__).parent
# the monitor (minimon.c), its --start mode (mbstart.c), the container's init (mbinit.c) and
# a build RUN's PID 1 (--pid1, mbpid1.c)
SOURCES = [HERE / "minimon.c", HERE / "mbstart.c", HERE / "mbinit.c", HERE / "mbpid1.c"]
HEADER = HERE / "minimon.h"
_cache: dict[str, str | None] = {}


def path(data_root) -> str | None:
    key = str(data_root)
    if key in _cache:
        return _cache[key]
    built = _build(Path(data_root) / "run")
    _cache[key] = built if built and _runs(built) else None
    return _cache[key]


def spawn(exe: str, mode: str, plan: bytes, dup2: list[tuple[int, int]],
          devnull: tuple[int, ...] = (0, 1, 2)) -> int:
    """posix_spawn ``exe mode`` (vfork: nothing of this process is copied; the GIL released,
    see kernel.posix_spawn) in a new session, with ``plan`` on fd 3 (a memfd) and each
    (source, target) of ``dup2``; ``devnull``: fds opened on /dev/null.  Returns its pid."""
    mem = os.memfd_create("minibox" + mode, os.MFD_CLOEXEC)
    fds: list[int] = []
    try:
        view = memoryview(plan)
        while view:
            view = view[os.write(mem, view):]
        os.lseek(mem, 0, os.SEEK_SET)
        pairs = [(mem, 3), *dup2]
        # above every target, so that no dup2 can overwrite a source still to come
        fds = [fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 5) for src, _ in pairs]
        return kernel.posix_spawn(exe, [exe, mode], [(f, t) for f, (_, t) in zip(fds, pairs)],
                                  devnull=devnull, setsid=True)
    finally:
        for f in [mem, *fds]:
            os.close(f)


def _runs(exe: str) -> bool:
    """Can it be executed here?  (A data root on a noexec mount cannot: then the Python
    monitor does the job rather than every start failing.)  Without arguments it prints
    its usage and exits 2."""
    try:
        return subprocess.run([exe], capture_output=True, timeout=30).returncode == 2
    except (OSError, subprocess.SubprocessError):
        return False


def _build(out_dir: Path) -> str | None:
    from minibox.config import process_settings
    if process_settings().python_monitor:
        return None
    digest = hashlib.sha256()
    for f in SOURCES + [HEADER]:
        digest.update(f.read_bytes())
    target = out_dir / f"minimon-{digest.hexdigest()[:16]}"
    if target.exists():
        return str(target)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    # one build at a time: the build pool's zygotes all start at once, and want it
    with open(out_dir / ".minimon.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return str(target)
        return _compile(cc, target)


def _compile(cc: str, target: Path) -> str | None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    # static where the C library allows it: no dynamic loader at each start (a build RUN's
    # PID 1 is started for every step: ~0.2 ms less each, measured)
    for flags in (["-O2", "-static"], ["-O2"]):
        try:
            subprocess.run([cc, *flags, "-o", str(tmp), *map(str, SOURCES)], check=True,
                           capture_output=True, timeout=120)
            os.rename(tmp, target)
            return str(target)
        except (OSError, subprocess.SubprocessError):
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return None
