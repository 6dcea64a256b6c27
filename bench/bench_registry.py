"""Registry and store benchmarks, each against its peer in the same run.

    sudo .venv/bin/python bench/bench_registry.py [-n 5]

1. pull of a 5-layer 50 MB image (gzip layers of random data) from a private
   docker-registry on loopback: ``minibox pull`` (download, verify, store, tag; CLI end to
   end) vs ``skopeo copy docker://… oci:DIR:…`` (download and verify only); and, for the
   record, the first use of the pulled image: its layers unpacked (in-process, as a run or
   a build does it), which a pull no longer does;
2. save + load round trip of that image: ``minibox save -o`` + ``rmi`` + ``load -i`` vs
   ``podman save`` + ``podman rmi`` + ``podman load`` (private podman root, vfs);
3. ``minibox system df`` on a store of 100 images and 500 containers (CLI end to end).

Prints medians, the ratios and the targets (pull <= 1.0 x skopeo, save+load <= 0.8 x
podman, df <= 0.5 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _farm import median  # noqa: E402
from tests.farmkit import busybox_farm, write_ctx  # noqa: E402
from tests.registry.registrykit import Podman, Registry  # noqa: E402

LAYERS, LAYER_MB = 5, 10


def timed(argv, env=None) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {r.stderr.decode()[-600:]}")
    return time.perf_counter() - t


def cli(farm, *args) -> list[str]:
    return [sys.executable, "-m", "minibox.cli.main", *map(str, args)]


def make_image(farm, registry, work: Path) -> str:
    files = {f"l{i}.bin": os.urandom(LAYER_MB << 20) for i in range(LAYERS)}
    blocks = "".join(f"BLOCK b{i}\n" + (f"    NEED b{i - 1}\n" if i else "") +
                     f"    COPY l{i}.bin /data/\n" for i in range(LAYERS))
    ctx = write_ctx(work / "ctx", {"MiniBox": "BASE scratch\n" + blocks, **files})
    name = f"{registry.host}/bench/pull:1"
    farm.build(ctx, name)
    farm.cli("push", name, check=True)
    return name


def reset(farm) -> None:
    """Nothing of the benchmark image left in the store (no blob, no layer, no cache)."""
    farm.cli("system", "prune", "-a", "--build-cache", "-f", check=True)


def first_use(farm, name: str) -> float:
    """Seconds to unpack the layers of a pulled image, as its first run or build does."""
    from minibox.store import Store

    store = Store(farm.root)
    layers = store.resolve(name).layer_infos()
    t = time.perf_counter()
    for layer in layers:
        store.ensure_layer_dir(layer)
    return time.perf_counter() - t


def bench_pull(farm, name: str, n: int, work: Path) -> tuple[float, float, float]:
    mb, sk, unpack = [], [], []
    env = dict(farm.env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for i in range(n + 1):
        reset(farm)
        dt = timed(cli(farm, "pull", "-q", name), env)
        unpack.append(first_use(farm, name))
        dest = work / f"oci-{i}"
        dt2 = timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                     f"docker://{name}", f"oci:{dest}:bench"])
        subprocess.run(["rm", "-rf", str(dest)], check=True)
        if i:                                          # the first run warms caches
            mb.append(dt)
            sk.append(dt2)
    return median(mb), median(sk), median(unpack[1:])


def bench_save_load(farm, podman: Podman, name: str, n: int, work: Path
                    ) -> tuple[float, float]:
    archive = work / "mb.tar"
    farm.cli("pull", "-q", name, check=True)
    farm.cli("save", name, "-o", archive, check=True)
    podman("load", "-i", str(archive))
    mb, pm = [], []
    env = dict(farm.env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for i in range(n + 1):
        t = time.perf_counter()
        timed(cli(farm, "save", name, "-o", archive), env)
        timed(cli(farm, "rmi", name), env)
        timed(cli(farm, "load", "-q", "-i", archive), env)
        dt = time.perf_counter() - t
        parch = work / "pm.tar"
        t = time.perf_counter()
        timed([*podman.base, "save", "-o", str(parch), name])
        timed([*podman.base, "rmi", name])
        timed([*podman.base, "load", "-q", "-i", str(parch)])
        dt2 = time.perf_counter() - t
        parch.unlink()
        if i:
            mb.append(dt)
            pm.append(dt2)
    return median(mb), median(pm)


def fill_store(farm, images: int, containers: int) -> None:
    """``images`` small images written through the store, ``containers`` exited containers
    through the CLI."""
    from minibox.store import Store
    from minibox.store.layertar import commit_upper

    store = Store(farm.root)
    base = store.resolve("busybox").layer_infos()
    for i in range(images):
        upper = store.tmp_dir("bench-")
        (upper / f"file{i}").write_text(f"image {i}\n")
        layer = commit_upper(store, upper)
        store.write_image(f"dfbench/img{i}:1", {"Cmd": ["sh"]}, [*base, layer])
    for i in range(containers):
        farm.cli("run", "--network", "none", "busybox", "true", check=True)


def bench_df(farm, n: int) -> float:
    env = dict(farm.env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    timed(cli(farm, "system", "df"), env)
    return median([timed(cli(farm, "system", "df"), env) for _ in range(n)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--containers", type=int, default=500)
    ap.add_argument("--images", type=int, default=100)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mb-bench-registry-", dir="/var/tmp"))
    registry = Registry().start()
    builder = puller = None
    podman = Podman()
    try:
        builder = busybox_farm(work / "b", {"MINIBOX_LAYER_COMPRESSION": "gzip"})
        name = make_image(builder, registry, work)
        builder.destroy()
        builder = None
        puller = busybox_farm(work / "p")
        puller.cli("run", "--name", "keep-busybox", "--network", "none", "busybox", "true",
                   check=True)                           # busybox outlives prune -a
        mb, sk, unpack = bench_pull(puller, name, args.n, work)
        print(f"pull 5 x {LAYER_MB} MB:   minibox {mb:.2f} s   skopeo copy {sk:.2f} s   "
              f"ratio {mb / sk:.2f} (target <= 1.0)")
        print(f"  first use of the pulled image (its layers unpacked): {unpack:.2f} s")
        mb, pm = bench_save_load(puller, podman, name, args.n, work)
        print(f"save+load round trip: minibox {mb:.2f} s   podman {pm:.2f} s   "
              f"ratio {mb / pm:.2f} (target <= 0.8)")
        fill_store(puller, args.images, args.containers)
        df = bench_df(puller, args.n)
        print(f"system df, {args.images} images + {args.containers} containers: "
              f"{df:.3f} s (target <= 0.5 s)")
    finally:
        for farm in (builder, puller):
            if farm is not None:
                farm.destroy()
        podman.cleanup()
        registry.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
