"""resolve_base: scratch, rootfs archives in the build context, local images, the hook."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from minibox.builder.base import DEFAULT_PATH, BaseImage, resolve_base, resolvers_for
from minibox.errors import NotFound, UserError
from minibox.store.layertar import commit_upper

from .conftest import needs_root, overlay

pytestmark = needs_root

BUSYBOX = shutil.which("busybox")


@pytest.fixture
def context(scratch) -> Path:
    """A build context holding a busybox rootfs as .tar, .tar.gz and .tar.zst."""
    if BUSYBOX is None:
        pytest.skip("busybox is not installed")
    rootfs, ctx = scratch / "rootfs", scratch / "ctx"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    (rootfs / "tmp").mkdir(mode=0o1777)
    os.chmod(rootfs / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for tool in ("sh", "echo", "cat", "ls"):
        os.symlink("busybox", rootfs / "bin" / tool)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    ctx.mkdir()
    tar = ["tar", "--numeric-owner", "-C", str(rootfs)]
    subprocess.run(tar + ["-cf", str(ctx / "rootfs.tar"), "."], check=True)
    subprocess.run(tar + ["-czf", str(ctx / "rootfs.tar.gz"), "."], check=True)
    subprocess.run(tar + ["--zstd", "-cf", str(ctx / "rootfs.tar.zst"), "."], check=True)
    return ctx


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_scratch(store):
    base = resolve_base(store, "scratch", None)
    assert (base.digest, base.layers, base.config) == ("scratch", [], {})


@pytest.mark.parametrize("name, media_suffix", [("rootfs.tar", ".tar"),
                                                ("./rootfs.tar.gz", ".tar+gzip"),
                                                ("rootfs.tar.zst", ".tar")])
def test_archive_base(store, context, name, media_suffix):
    base = resolve_base(store, name, context)
    assert base.digest == sha256_file(context / name)
    assert base.config == {"Env": [DEFAULT_PATH]}
    [layer] = base.layers
    assert layer.media_type.endswith(media_suffix)
    if name.endswith(".zst"):   # stored decompressed: umoci 0.4 cannot read zstd layers
        assert layer.digest == layer.diff_id
        assert store.blob_path(layer.digest).read_bytes() == (context / "rootfs.tar").read_bytes()
    else:                       # the archive itself is the blob
        assert layer.digest == base.digest
        assert store.blob_path(layer.digest).read_bytes() == (context / name).read_bytes()
    assert layer.dir == store.layer_dir(layer.diff_id)
    assert os.readlink(layer.dir / "bin" / "sh") == "busybox"
    assert stat_mode(layer.dir / "tmp") == 0o1777
    assert (store.bases_dir / f"{base.digest.split(':')[1]}.json").is_file()
    assert BaseImage.from_dict(base.to_dict()) == base


def stat_mode(path: Path) -> int:
    return path.lstat().st_mode & 0o7777


def test_all_compressions_give_one_diff_id(store, context):
    ids = {resolve_base(store, n, context).layers[0].diff_id
           for n in ("rootfs.tar", "rootfs.tar.gz", "rootfs.tar.zst")}
    assert len(ids) == 1
    assert len(list(store.layout.layers.iterdir())) == 1


def test_archive_import_is_cached_by_content(store, context):
    first = resolve_base(store, "rootfs.tar.gz", context)
    blob = store.blob_path(first.digest)
    stamp = blob.stat().st_mtime_ns
    again = resolve_base(store, "rootfs.tar.gz", context)
    assert again == first and blob.stat().st_mtime_ns == stamp
    assert list(store.layout.tmp.iterdir()) == []

    shutil.rmtree(first.layers[0].dir)                       # a pruned layer dir comes back
    assert resolve_base(store, "rootfs.tar.gz", context).layers[0].dir.is_dir()

    (context / "rootfs.tar.gz").write_bytes(
        subprocess.run(["gzip", "-1c", str(context / "rootfs.tar")], check=True,
                       capture_output=True).stdout)
    changed = resolve_base(store, "rootfs.tar.gz", context)
    assert changed.digest != first.digest
    assert changed.layers[0].diff_id == first.layers[0].diff_id


def test_archive_paths_are_checked(store, context, scratch):
    shutil.copy(context / "rootfs.tar", scratch / "outside.tar")
    os.symlink(scratch / "outside.tar", context / "sneaky.tar")
    for ref in ("../outside.tar", str(scratch / "outside.tar"), "sneaky.tar"):
        with pytest.raises(UserError, match="outside the build context"):
            resolve_base(store, ref, context)
    with pytest.raises(UserError, match="looked for .*ctx/nope.tar.gz"):
        resolve_base(store, "nope.tar.gz", context)
    with pytest.raises(UserError, match="needs a build context"):
        resolve_base(store, "rootfs.tar", None)
    (context / "junk.tar.gz").write_bytes(b"\x1f\x8b" + b"junk" * 10)
    with pytest.raises(UserError, match="not a valid"):
        resolve_base(store, "junk.tar.gz", context)
    assert list(store.layout.tmp.iterdir()) == []


def test_built_image_as_base_runs_in_a_sandbox(store, context, scratch):
    """archive base -> overlay + chroot -> commit -> image -> base of the next build."""
    base = resolve_base(store, "rootfs.tar.gz", context)
    upper, work = store.tmp_dir("upper-"), store.tmp_dir("work-")
    with overlay(scratch / "m", [layer.dir for layer in reversed(base.layers)],
                 upper, work) as merged:
        out = subprocess.run([shutil.which("chroot"), str(merged), "/bin/sh", "-c",
                              "echo built > /etc/motd; cat /etc/motd"],
                             env={"PATH": "/bin"}, check=True, capture_output=True, text=True)
    assert out.stdout == "built\n"
    step = commit_upper(store, upper, "gzip")
    config = dict(base.config, Cmd=["/bin/sh"])
    manifest = store.write_image("mybase:1", config, base.layers + [step],
                                 created="2024-01-01T00:00:00Z")

    for d in store.layout.layers.iterdir():                  # as after a prune
        shutil.rmtree(d)
    local = resolve_base(store, "mybase:1", context)
    assert local.digest == manifest.digest and local.ref == "mybase:1"
    assert [layer.diff_id for layer in local.layers] == [base.layers[0].diff_id, step.diff_id]
    assert local.config == config
    assert all(layer.dir.is_dir() for layer in local.layers)
    assert (local.layers[1].dir / "etc" / "motd").read_text() == "built\n"
    assert resolve_base(store, manifest.digest, None).digest == manifest.digest


def test_unknown_bases(store):
    # --pull never: the test must not reach Docker Hub (tests/registry covers pulling)
    with pytest.raises(NotFound, match="base image 'alpine:3.19' not found") as err:
        resolve_base(store, "alpine:3.19", None, resolvers_for("never"))
    assert "--pull never" in err.value.hint
    with pytest.raises(NotFound) as err:
        resolve_base(store, "Not A Name!", None)
    assert "scratch" in err.value.hint
    with pytest.raises(UserError):
        resolve_base(store, "  ", None)


class RegistryResolverForTest:
    """Stands where the registry resolver will go: after the local ones."""

    def __init__(self, layer):
        self.layer = layer

    def matches(self, ref, store):
        return ref.startswith("registry.test/")

    def resolve(self, store, ref, context_dir):
        return BaseImage(ref=ref, digest="sha256:" + "5" * 64, layers=[self.layer],
                         config={"User": "nobody"})


def test_resolvers_are_pluggable(store):
    upper = store.tmp_dir("u-")
    (upper / "pulled").write_text("p")
    layer = commit_upper(store, upper, "zstd")
    shutil.rmtree(layer.dir)
    resolvers = resolvers_for("never") + (RegistryResolverForTest(layer),)
    base = resolve_base(store, "registry.test/app:1", None, resolvers)
    assert base.config == {"User": "nobody"}
    assert (base.layers[0].dir / "pulled").read_text() == "p"     # unpacked on resolve
