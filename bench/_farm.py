"""A private farm for the runtime benchmarks (the same one the tests use: redis-server, the
runtime worker and the API under uvicorn, on a throw-away data root with the offline busybox
image imported)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.runtime.farm import Farm  # noqa: E402
from tests.runtime.images import import_busybox  # noqa: E402


def start_farm() -> Farm:
    f = Farm()
    import_busybox(f.root, "busybox")
    try:
        f.start()
    except BaseException:
        f.cleanup()
        raise
    return f


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
