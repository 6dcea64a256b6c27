"""The compiled monitor (minimon.c, mbstart.c, mbinit.c): built once per source version
into the data root.

A forked Python monitor costs megabytes of private memory per container (copy-on-write
pages its interpreter touches); the C one about 100 KiB, which is what makes 500 idle
containers fit in 500 MiB.  It also starts the container (``minimon --start``, see
spawn.py): the init's namespaces, rootfs and privileges set up in C cost a third of what
the forked Python ones did.  ``path()`` compiles it with the system C compiler on first use
(``cc -O2``, about half a second) and returns None when there is no compiler, in which case
the Python monitor (monitor.py) does the same job.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
# the monitor (minimon.c), its --start mode (mbstart.c) and the container's init (mbinit.c)
SOURCES = [HERE / "minimon.c", HERE / "mbstart.c", HERE / "mbinit.c"]
HEADER = HERE / "minimon.h"
_cache: dict[str, str | None] = {}


def path(data_root) -> str | None:
    key = str(data_root)
    if key in _cache:
        return _cache[key]
    built = _build(Path(data_root) / "run")
    _cache[key] = built if built and _runs(built) else None
    return _cache[key]


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
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        subprocess.run([cc, "-O2", "-o", str(tmp), *map(str, SOURCES)], check=True,
                       capture_output=True, timeout=120)
        os.rename(tmp, target)
    except (OSError, subprocess.SubprocessError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return None
    return str(target)
