"""The per-image init layer (mount points the image lacks) and the per-container /etc files
that live only in the container's own /dev tmpfs."""

from __future__ import annotations

import json
import os
import stat

from minibox.runtime.start import initlayer
from minibox.runtime.images import OPAQUE_XATTR
from tests.runtime.conftest import run_ok


def _layers(tmp_path, n):
    out = []
    for i in range(n):
        d = tmp_path / f"l{i}"
        d.mkdir()
        out.append(d)
    return out


def _whiteout(path):
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def test_lookup_follows_overlay_rules(tmp_path):
    top, mid, low = _layers(tmp_path, 3)
    for d in (mid, low):
        (d / "etc").mkdir()
    (low / "etc" / "hosts").write_text("x")
    (low / "etc" / "resolv.conf").write_text("x")
    (low / "proc").mkdir()
    (top / "etc").mkdir()
    _whiteout(top / "etc" / "hosts")                     # deleted in the top layer
    layers = [str(top), str(mid), str(low)]
    assert initlayer.lookup(layers, "etc/hosts")[0] == "none"
    assert initlayer.lookup(layers, "etc/resolv.conf")[0] == "file"
    assert initlayer.lookup(layers, "proc")[0] == "dir"
    os.setxattr(mid / "etc", OPAQUE_XATTR, b"y")     # mid's /etc hides low's
    assert initlayer.lookup(layers, "etc/resolv.conf")[0] == "none"
    kinds = {(k, rel) for k, rel, _ in initlayer.missing(layers)}
    assert kinds == {("dir", "sys"), ("dir", "dev"), ("dir", "etc"), ("file", "etc/hostname"),
                     ("file", "etc/hosts"), ("file", "etc/resolv.conf")}


def test_image_whose_etc_is_a_symlink_is_left_alone(tmp_path):
    (layer,) = _layers(tmp_path, 1)
    for d in initlayer.DIRS:
        (layer / d).mkdir()
    (layer / "etc").symlink_to("private/etc")
    assert initlayer.missing([str(layer)]) == []


def test_init_layer_is_made_once_with_the_images_etc_mode(tmp_path):
    (layer,) = _layers(tmp_path, 1)
    (layer / "etc").mkdir(mode=0o750)
    os.chmod(layer / "etc", 0o750)
    root = tmp_path / "root"
    path = initlayer.for_image(root, [str(layer)])
    assert sorted(os.listdir(path)) == ["dev", "etc", "proc", "sys"]
    assert sorted(os.listdir(os.path.join(path, "etc"))) == ["hostname", "hosts", "resolv.conf"]
    assert stat.S_IMODE(os.stat(os.path.join(path, "etc")).st_mode) == 0o750
    assert initlayer.for_image(root, [str(layer)]) == path
    assert len(os.listdir(root / "containers" / ".init")) == 1


def test_container_writes_nothing_to_its_upper_dir_at_start(farm):
    cid = run_ok(farm, "run", "-d", "--hostname", "h1", "busybox", "sleep", "60").strip()
    try:
        d = farm.root / "containers" / cid
        assert os.listdir(d / "upper") == []
        assert not (d / "hosts").exists() and not (d / "rootfs").exists()
        out = run_ok(farm, "exec", cid, "sh", "-c",
                     "cat /etc/hostname /etc/hosts /etc/resolv.conf; ls -a /dev")
        assert out.startswith("h1\n") and "127.0.1.1\th1" in out
        assert ".hosts" not in out                       # unlinked once mounted
        run_ok(farm, "exec", cid, "sh", "-c", "echo 10.0.0.9 extra >> /etc/hosts")
        assert "10.0.0.9" in run_ok(farm, "exec", cid, "cat", "/etc/hosts")
        assert os.listdir(d / "upper") == []             # the edit stays off the layer
    finally:
        run_ok(farm, "rm", "-f", cid)


def test_restart_gets_fresh_etc_files(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "60").strip()
    try:
        info = json.loads(run_ok(farm, "inspect", cid))
        short = (info[0] if isinstance(info, list) else info)["id"][:12]
        run_ok(farm, "restart", "-t", "0", cid)
        assert run_ok(farm, "exec", cid, "cat", "/etc/hostname").strip() == short
    finally:
        run_ok(farm, "rm", "-f", cid)
