"""``system info``: where the data root is, which drivers are in use, counts, versions."""

from __future__ import annotations

import platform
import shutil
import subprocess

from minibox import __version__
from minibox.space.usage import info_counts
from minibox.store import Store


def info(store: Store, settings) -> dict:
    from minibox.runtime.limits import cgroups

    counts = info_counts(store)
    return {
        "data_root": str(store.root),
        "storage_driver": "overlay",
        "layer_compression": settings.layer_compression,
        "cgroup_version": "2" if cgroups.is_v2() else "1",
        "cgroup_parent": cgroups.parent_name(),
        "logging_driver": "local (framed lines, rotated by size)",
        "runtime": "minibox (compiled monitor)" if shutil.which("cc") else "minibox (python)",
        "init": "tini-static",
        "build_concurrency": settings.build_concurrency,
        "broker": "embedded redis" if not settings.broker_url else "external redis",
        **counts,
        "versions": {"minibox": __version__, "python": platform.python_version(),
                     "kernel": platform.release(), "redis": _redis_version()},
        "os": f"{platform.system()} {platform.machine()}",
    }


def _redis_version() -> str:
    path = shutil.which("redis-server")
    if not path:
        return "not installed"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return out.strip()[:40]
