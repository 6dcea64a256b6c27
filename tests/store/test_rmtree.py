"""minibox.rmtree on real directories: remove_known removes the tree it expects with a call
per entry, and anything else it finds (more files, a deeper tree, a symlink) is removed by
remove_tree, never followed, never left behind."""

from __future__ import annotations

import os

from minibox.rmtree import remove_known

FILES = ("w/work/incompat/volatile/dirty",)
DIRS = ("w/work/incompat/volatile", "w/work/incompat", "w/work", "w", "scratch")


def _tree(root, extra=()):
    for d in DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in FILES:
        (root / f).write_text("")
    for rel in extra:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")


def test_the_expected_tree_is_removed(tmp_path):
    root = tmp_path / "block"
    _tree(root)
    remove_known(root, FILES, DIRS)
    assert not root.exists()


def test_anything_more_is_removed_too_and_a_symlink_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    root = tmp_path / "block"
    _tree(root, extra=("upper/a/b/c/file", "scratch/left", "w/work/other"))
    os.symlink(outside, root / "upper" / "link")
    remove_known(root, FILES, DIRS)
    assert not root.exists()
    assert (outside / "keep").read_text() == "keep"


def test_a_partial_or_missing_tree_is_no_error(tmp_path):
    root = tmp_path / "block"
    (root / "scratch").mkdir(parents=True)
    remove_known(root, FILES, DIRS)
    assert not root.exists()
    remove_known(root, FILES, DIRS)
