"""Benchmark: committing a 60 MB overlay upper dir as a layer, against GNU tar peers.

Run:  .venv/bin/python bench/bench_layer_commit.py [--runs N] [--mb SIZE] [--keep]

It builds one upper-dir template (a mix of big, medium, small and tiny files, half random and
half compressible text, plus dirs, symlinks and hardlinks), then for every method copies the
template into a fresh dir (not timed), flushes the page cache's dirty data (not timed) and
times the method.  ``commit_upper`` includes everything it does for real: the tar stream,
sha256 (diff_id and digest), compression, writing the blob with fsync, ``sync`` and the
rename of the upper dir into ``layers/``.  Peers, on the same tree in the same run:

* ``tar -cf - . | sha256sum``            the floor: GNU tar plus one hash, nothing written
* ``tar -cf - . | tee blob | sha256sum`` plus writing the blob (no fsync)
* ``tar | gzip -1 | sha256sum`` and ``tar | zstd -3 -T0 | sha256sum``
* Python ``tarfile`` + sha256 (what FIELD-NOTES measured at ~226 MB/s)

Must be run as root on a filesystem with xattr support (the store lives under /var/tmp).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minibox.store import Store  # noqa: E402
from minibox.store.layertar import commit_upper, write_tree_tar  # noqa: E402

MB = 1_000_000


def make_template(root: Path, total_mb: int) -> int:
    """A deterministic tree of about ``total_mb`` MB; returns its byte count."""
    rng = random.Random(42)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"lib", b"usr", b"share", b"python3"]
    plan = [(10 * MB, 2), (1 * MB, 16), (64_000, 200), (4_000, 2_000), (600, 1_500)]
    scale = total_mb / 60
    written = 0
    for size, count in plan:
        for i in range(max(1, round(count * scale))):
            d = root / f"d{size}" / f"sub{i % 23}"
            d.mkdir(parents=True, exist_ok=True)
            if i % 2:
                data = rng.randbytes(size)
            else:
                data = b" ".join(rng.choice(words) for _ in range(size // 5 + 1))[:size]
            (d / f"f{i}").write_bytes(data)
            written += size
    (root / "links").mkdir()
    for i in range(50):
        os.symlink(f"../d600/sub{i % 23}/f{i}", root / "links" / f"s{i}")
    os.link(root / "d1000000" / "sub0" / "f0", root / "links" / "hard")
    return written


def timed(fn, runs: int, prepare) -> tuple[float, float]:
    """(best, median) wall seconds over ``runs``; ``prepare`` and a sync are not timed."""
    times = []
    for _ in range(runs):
        arg = prepare()
        os.sync()
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def shell(cmd: str):
    def run(path: Path) -> None:
        subprocess.run(cmd.format(dir=path, out=path.parent / "peer.blob"), shell=True,
                       check=True, stdout=subprocess.DEVNULL)
    return run


def python_tarfile(path: Path) -> None:
    h = hashlib.sha256()

    class Sink:
        def write(self, data):
            h.update(data)
            return len(data)

    with tarfile.open(fileobj=Sink(), mode="w|", format=tarfile.PAX_FORMAT) as tf:
        tf.add(path, arcname=".")


def emitter_only(path: Path) -> None:
    h = hashlib.sha256()

    class Sink:
        def write(self, data):
            h.update(data)
            return len(data)

    write_tree_tar(path, Sink())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=60)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mb-bench-", dir="/var/tmp"))
    try:
        return run_all(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run_all(work: Path, args) -> int:
    store = Store(work / "root")
    template = work / "template"
    template.mkdir()
    nbytes = make_template(template, args.mb)
    print(f"tree: {nbytes / MB:.1f} MB of file data, {sum(1 for _ in template.rglob('*'))} "
          f"entries; {args.runs} runs each; {len(os.sched_getaffinity(0))} CPUs; load "
          f"average {os.getloadavg()[0]:.2f} at start\n")

    def fresh_upper() -> Path:
        for d in store.layout.layers.iterdir():
            shutil.rmtree(d)
        for b in store.layout.blobs.iterdir():
            b.unlink()
        upper = store.tmp_dir("upper-")
        os.rmdir(upper)
        subprocess.run(["cp", "-a", str(template), str(upper)], check=True)
        return upper

    def commit(compression: str):
        return lambda upper: commit_upper(store, upper, compression)

    rows = [
        ("minibox commit_upper none", commit("none")),
        ("minibox commit_upper gzip-1", commit("gzip")),
        ("minibox commit_upper zstd-3", commit("zstd")),
        ("minibox tar emitter + sha256 only", emitter_only),
        ("GNU tar | sha256sum", shell("tar -C {dir} -cf - . | sha256sum")),
        ("GNU tar | tee blob | sha256sum",
         shell("tar -C {dir} -cf - . | tee {out} | sha256sum")),
        ("GNU tar | gzip -1 | sha256sum", shell("tar -C {dir} -cf - . | gzip -1 | sha256sum")),
        ("GNU tar | zstd -3 -T0 | sha256sum",
         shell("tar -C {dir} -cf - . | zstd -q -3 -T0 | sha256sum")),
        ("Python tarfile + sha256", python_tarfile),
    ]
    results = {name: timed(fn, args.runs, fresh_upper) for name, fn in rows}
    report(results, nbytes)
    return 0


def report(results: dict[str, tuple[float, float]], nbytes: int) -> None:
    pairs = {"minibox commit_upper none": "GNU tar | tee blob | sha256sum",
             "minibox commit_upper gzip-1": "GNU tar | gzip -1 | sha256sum",
             "minibox commit_upper zstd-3": "GNU tar | zstd -3 -T0 | sha256sum",
             "minibox tar emitter + sha256 only": "GNU tar | sha256sum"}
    print(f"{'method':36} {'best s':>7} {'median s':>8} {'MB/s':>6}  speed vs peer (best)")
    for name, (best, median) in results.items():
        line = f"{name:36} {best:7.3f} {median:8.3f} {nbytes / MB / best:6.0f}"
        if name in pairs:
            line += f"  {results[pairs[name]][0] / best:5.2f}x '{pairs[name]}'"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
