"""The farm across hosts: simulated machines (network namespaces on a bridge of the bench's own,
each build worker with its own data root; Redis and miniboxd on the bridge's address with a
token: the tests' tests/farm/netfarm.py).

    .venv/bin/python bench/bench_farm.py            # both
    .venv/bin/python bench/bench_farm.py spread     # 8 independent `sleep 2` blocks: two hosts
                                                    # x 4 vs one host x 8 (same concurrency)
    .venv/bin/python bench/bench_farm.py transfer   # a 100 MB layer host A -> daemon -> host B

spread: `minibox build` end to end, after a warm-up build that gave every host the base
layer; each run's blocks are new (no cache hits).  Target: two hosts <= 1.2 x one host.
transfer: what a worker does with a layer, through builder/remote.py: host A sends a 100 MB
blob to the daemon (PUT /blobs, digest checked on arrival), host B fetches it into its own
store (GET /blobs, digest checked before it is committed).  Target >= 200 MB/s.
Everything it makes is removed at the end.  Needs root and the offline busybox base.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.farm.netfarm import NetFarm  # noqa: E402
from tests.farmkit import busybox_tarball, write_ctx  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BLOCKS = 8


def _ctx(work: Path, name: str, body: str) -> Path:
    ctx = write_ctx(work / name, {"MiniBox": "BASE busybox.tar.gz\n" + body})
    shutil.copy(busybox_tarball(), ctx / "busybox.tar.gz")
    return ctx


def _sleeps(tag: str) -> str:
    return "".join(f"BLOCK s{j}\n    RUN sleep 2 && echo {tag} > /s{j}\n" for j in range(BLOCKS))


def _wall(nf: NetFarm, work: Path, label: str) -> list[float]:
    nf.farm.build(_ctx(work, f"{label}-warm", "".join(
        f"BLOCK w{j}\n    RUN echo {label} > /w{j}\n" for j in range(BLOCKS))),
        f"{label}-warm", "--network", "none")
    times = []
    for i in range(RUNS):
        ctx = _ctx(work, f"{label}{i}", _sleeps(f"{label}-{i}-{time.time_ns()}"))
        t0 = time.perf_counter()
        nf.farm.build(ctx, f"{label}{i}", "--network", "none")
        times.append(time.perf_counter() - t0)
    return times


def spread(work: Path) -> None:
    results = {}
    for label, hosts, conc in (("two-hosts", 2, BLOCKS // 2), ("one-host", 1, BLOCKS)):
        nf = NetFarm(hosts=hosts).start()
        try:
            nf.start_workers(concurrency=conc)
            results[label] = _wall(nf, work, label)
        finally:
            nf.close()
    two, one = (statistics.median(results[k]) for k in ("two-hosts", "one-host"))
    print(f"spread: {BLOCKS} x `sleep 2`, two hosts x {BLOCKS // 2}: median {two:.2f} s "
          f"{[round(t, 2) for t in results['two-hosts']]}; one host x {BLOCKS}: median "
          f"{one:.2f} s {[round(t, 2) for t in results['one-host']]}; ratio {two / one:.2f} "
          f"(target <= 1.2) {'ok' if two <= 1.2 * one else 'MISSED'}")


_SEND = """
import json, os, sys, time
from minibox.builder.remote import Daemon
from minibox.config import Settings
from minibox.store import Store
from minibox.store.oci import LAYER_MEDIA_TYPES
s = Settings.from_env(); store = Store(s.data_root); daemon = Daemon(sys.argv[1], s)
if sys.argv[2] == "send":
    with store.open_blob_writer(LAYER_MEDIA_TYPES["none"]) as w:
        block = os.urandom(1 << 20)
        for i in range(int(sys.argv[3])):
            w.write(block[:-8] + i.to_bytes(8, "big"))
    digest = w.descriptor.digest
    t0 = time.perf_counter(); daemon.push_blob(store, digest); took = time.perf_counter() - t0
else:
    digest = sys.argv[3]
    t0 = time.perf_counter(); daemon.fetch_blob(store, digest, LAYER_MEDIA_TYPES["none"])
    took = time.perf_counter() - t0
print(json.dumps({"digest": digest, "seconds": took,
                  "size": os.path.getsize(store.blob_path(digest))}))
"""


def _in_host(nf: NetFarm, host, *args: str) -> dict:
    env = dict(nf.farm.env, MINIBOX_DATA_ROOT=str(host.root), MINIBOX_API_TOKEN=nf.token)
    r = subprocess.run(["ip", "netns", "exec", host.netns, sys.executable, "-c", _SEND,
                        nf.farm.api, *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"transfer failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def transfer(work: Path, mb: int = 100) -> None:
    nf = NetFarm(hosts=2).start()
    try:
        a, b = nf.hosts
        sends, fetches = [], []
        for _ in range(RUNS):
            sent = _in_host(nf, a, "send", str(mb))
            got = _in_host(nf, b, "fetch", sent["digest"])
            assert got["size"] == sent["size"]
            sends.append(sent["size"] / sent["seconds"] / 1e6)
            fetches.append(got["size"] / got["seconds"] / 1e6)
            for h in (a, b):
                shutil.rmtree(h.root / "blobs", ignore_errors=True)
    finally:
        nf.close()
    send, fetch = statistics.median(sends), statistics.median(fetches)
    print(f"transfer: {mb} MB layer over the bridge: host A -> daemon median {send:.0f} MB/s "
          f"{[round(x) for x in sends]}; daemon -> host B median {fetch:.0f} MB/s "
          f"{[round(x) for x in fetches]} (target >= 200) "
          f"{'ok' if min(send, fetch) >= 200 else 'MISSED'}")


def main() -> None:
    what = sys.argv[1:] or ["spread", "transfer"]
    work = Path(tempfile.mkdtemp(prefix="bench-farm-", dir="/var/tmp"))
    try:
        for w in what:
            {"spread": spread, "transfer": transfer}[w](work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
