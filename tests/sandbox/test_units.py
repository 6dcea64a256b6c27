"""Pure-Python parts: in-root path resolution, user lookup, WORKDIR/USER steps."""

from __future__ import annotations

import os

import pytest

from minibox.errors import BuildFailed
from minibox.sandbox import rootfs, users
from tests.sandbox.conftest import make_busybox_rootfs


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../etc", root / "climb")
    os.symlink("usr/lib", root / "lib")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return str(root)


@pytest.mark.parametrize("path,want", [
    ("/abs/passwd", "/etc/passwd"),
    ("/climb/x", "/etc/x"),
    ("/../../etc", "/etc"),
    ("/lib/libc.so", "/usr/lib/libc.so"),
    ("/new/../etc", "/etc"),
    ("relative/x", "/relative/x"),
    ("/", ""),
])
def test_resolve_stays_inside_the_root(tree, path, want):
    assert rootfs.resolve(tree, path) == tree + want


def test_resolve_refuses_symlink_loops(tree):
    with pytest.raises(rootfs.RootPathError, match="too many levels"):
        rootfs.resolve(tree, "/loop1/x")


def test_mkdir_p_through_symlinks_and_reports_created(tree):
    made: list[str] = []
    assert rootfs.mkdir_p(tree, "/abs/a/b", created=made) == tree + "/etc/a/b"
    assert made == [tree + "/etc/a", tree + "/etc/a/b"]
    open(tree + "/etc/file", "w").close()
    with pytest.raises(rootfs.RootPathError, match="/etc/file exists and is not a directory"):
        rootfs.mkdir_p(tree, "/etc/file/x")


def test_users_from_the_image(tmp_path):
    root = str(make_busybox_rootfs(tmp_path / "r"))
    assert users.resolve_user(root, "app", 1) == users.Creds(1000, 1000, (1000, 10), "app",
                                                             "/home/app")
    assert users.resolve_user(root, "0:wheel", 1).groups == (10,)
    with pytest.raises(BuildFailed, match="line 3: group 'nogroup' does not exist"):
        users.resolve_user(root, "app:nogroup", 3)
    empty = str(tmp_path / "empty")
    os.mkdir(empty)
    assert users.resolve_user(empty, "", 1) == users.Creds(0, 0, (0,), "root", "/root")


def test_workdir_and_user_steps(box):
    box.run([{"op": "workdir", "line": 1, "path": "/srv/www"},
             {"op": "user", "line": 2, "user": "app:wheel"},
             {"op": "user", "line": 3, "user": "31337"}])
    assert (box.upper / "srv/www").is_dir()
    with pytest.raises(BuildFailed, match="line 4: USER 'nobody' does not exist"):
        box.run([{"op": "user", "line": 4, "user": "nobody"}])
