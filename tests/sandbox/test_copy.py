"""COPY from the build context and COPY FROM another block's merged view."""

from __future__ import annotations

import os
import stat
import uuid

import pytest

from minibox.errors import BuildFailed, UserError
from tests.sandbox.conftest import make_busybox_rootfs


def copy_step(sources, dest, line=1, workdir="/", frm=None) -> dict:
    return {"op": "copy", "line": line, "sources": list(sources), "dest": dest, "from": frm,
            "workdir": workdir}


@pytest.fixture
def ctx(box):
    c = box.context
    (c / "a.txt").write_text("A")
    (c / "b.js").write_text("B")
    (c / "c.js").write_text("C")
    (c / ".hidden.js").write_text("H")
    (c / "src/sub").mkdir(parents=True)
    (c / "src/x").write_text("X")
    (c / "src/sub/y").write_text("Y")
    os.chown(c / "a.txt", 1234, 1234)
    return c


def test_file_into_dir_with_trailing_slash_owned_by_root(box, ctx):
    box.run([copy_step(["a.txt"], "/app/")])
    st = os.stat(box.upper / "app/a.txt")
    assert (box.upper / "app/a.txt").read_text() == "A" and (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_IMODE(os.stat(box.upper / "app").st_mode) == 0o755


def test_file_without_slash_becomes_that_file_or_goes_into_existing_dir(box, ctx):
    box.run([copy_step(["a.txt"], "/app"), copy_step(["a.txt"], "/bin")])
    assert (box.upper / "app").read_text() == "A"
    assert (box.upper / "bin/a.txt").read_text() == "A"


def test_directory_source_copies_its_contents(box, ctx):
    box.run([copy_step(["src"], "/app")])
    assert sorted(os.listdir(box.upper / "app")) == ["sub", "x"]
    assert (box.upper / "app/sub/y").read_text() == "Y"


def test_glob_makes_dest_a_directory_and_matches_dotfiles(box, ctx):
    box.run([copy_step(["*.js"], "/app")])
    assert sorted(os.listdir(box.upper / "app")) == [".hidden.js", "b.js", "c.js"]


def test_relative_dest_resolves_against_workdir(box, ctx):
    box.run([copy_step(["a.txt"], "rel/", workdir="/srv"),
             copy_step(["b.js"], ".", workdir="/srv"),
             copy_step(["."], ".", workdir="/all")])
    assert (box.upper / "srv/rel/a.txt").is_file() and (box.upper / "srv/b.js").is_file()
    assert (box.upper / "all/src/sub/y").is_file()


def test_modes_setuid_symlinks_and_hardlinks_are_kept(box, ctx):
    tool = ctx / "tools"
    tool.mkdir()
    (tool / "suid").write_text("#!/bin/sh\n")
    os.chmod(tool / "suid", 0o4755)
    (tool / "private").mkdir(mode=0o750)
    os.chmod(tool / "private", 0o750)
    os.symlink("suid", tool / "rel-link")
    os.symlink("/etc/shadow", tool / "abs-link")
    os.link(tool / "suid", tool / "hard")
    box.run([copy_step(["tools"], "/t/")])
    t = box.upper / "t"
    assert stat.S_IMODE(os.stat(t / "suid").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(t / "private").st_mode) == 0o750
    assert os.readlink(t / "rel-link") == "suid" and os.readlink(t / "abs-link") == "/etc/shadow"
    assert os.stat(t / "hard").st_ino == os.stat(t / "suid").st_ino


@pytest.mark.parametrize("source", ["../outside", "/etc/passwd", "escape/passwd", "pw",
                                    "src/../../x", "../*"])
def test_sources_escaping_the_context_are_refused(box, ctx, tmp_path, source):
    os.symlink("/etc", ctx / "escape")
    os.symlink("/etc/passwd", ctx / "pw")
    (tmp_path / "box" / "outside").write_text("secret")
    with pytest.raises(UserError) as ei:
        box.run([copy_step([source], "/x", line=5)])
    assert ":5:" in ei.value.message or "line 5" in ei.value.message
    assert not (box.upper / "x").exists()


def test_symlink_inside_the_context_is_followed_at_top_level(box, ctx):
    os.symlink("src", ctx / "alias")
    box.run([copy_step(["alias"], "/app")])
    assert (box.upper / "app/x").read_text() == "X"


def test_missing_source_is_a_user_error(box, ctx):
    with pytest.raises(UserError, match="MiniBox:3: COPY source 'nope' not found"):
        box.run([copy_step(["nope"], "/x", line=3)])
    with pytest.raises(UserError, match="MiniBox:3: COPY source '\\*.nope' not found"):
        box.run([copy_step(["*.nope"], "/x", line=3)])


def test_dest_symlinks_are_resolved_inside_the_image(make_box, tmp_path):
    lower = make_busybox_rootfs(tmp_path / "links")
    os.symlink("/etc", lower / "app")
    os.symlink("../../../../../../etc", lower / "climb")
    b = make_box([str(lower)])
    name = f"minibox-copy-test-{uuid.uuid4().hex}"
    (b.context / name).write_text("inside")
    try:
        b.run([copy_step([name], "/app/"), copy_step([name], "/climb/sub/")])
        assert (b.upper / "etc" / name).read_text() == "inside"
        assert (b.upper / "etc/sub" / name).read_text() == "inside"
        assert not os.path.lexists(f"/etc/{name}") and not os.path.lexists("/etc/sub")
        assert os.path.islink(lower / "app")
    finally:
        for p in (f"/etc/{name}", f"/etc/sub/{name}"):
            if os.path.lexists(p):
                os.unlink(p)


def test_copy_into_existing_lower_dir_and_over_a_lower_file(box, ctx):
    (ctx / "motd").write_text("new motd")
    box.run([copy_step(["motd"], "/etc/motd")])
    assert (box.upper / "etc/motd").read_text() == "new motd"


def test_copy_file_over_directory_is_refused(box, ctx):
    (ctx / "d").mkdir()
    (ctx / "d/etc").write_text("x")
    with pytest.raises(BuildFailed, match="line 4: cannot replace the directory /etc"):
        box.run([copy_step(["d"], "/", line=4)])


@pytest.fixture
def other_block(tmp_path):
    """A block's merged view in two layers: its own diff (top) over its base."""
    base = tmp_path / "ob-base"
    top = tmp_path / "ob-top"
    (base / "opt/app").mkdir(parents=True)
    (top / "opt/app").mkdir(parents=True)
    (base / "opt/app/base-only.txt").write_text("base")
    (base / "opt/app/shared.txt").write_text("old")
    (base / "opt/app/deleted.txt").write_text("gone")
    (top / "opt/app/shared.txt").write_text("new")
    (top / "opt/app/owned").write_text("o")
    os.chown(top / "opt/app/owned", 1234, 5678)
    os.mknod(top / "opt/app/deleted.txt", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.symlink("/opt/app", top / "applink")
    return [str(top), str(base)]


def test_copy_from_reads_the_merged_view_and_keeps_owners(box, other_block):
    box.run([copy_step(["/opt/app"], "/dst", frm="builder")],
            copy_from={"builder": other_block})
    d = box.upper / "dst"
    assert sorted(os.listdir(d)) == ["base-only.txt", "owned", "shared.txt"]
    assert (d / "shared.txt").read_text() == "new"
    st = os.stat(d / "owned")
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_copy_from_follows_symlinks_inside_that_block_and_globs(box, other_block):
    box.run([copy_step(["/applink/base-only.txt", "/opt/app/*.txt"], "/d/", frm="b")],
            copy_from={"b": other_block})
    assert sorted(os.listdir(box.upper / "d")) == ["base-only.txt", "shared.txt"]


def test_copy_from_a_single_dir_and_a_missing_path(box, other_block):
    box.run([copy_step(["/opt/app/base-only.txt"], "/f", frm="b")],
            copy_from={"b": other_block[1:]})
    assert (box.upper / "f").read_text() == "base"
    with pytest.raises(BuildFailed, match="line 6: '/nope' does not exist in block 'b'"):
        box.run([copy_step(["/nope"], "/f", line=6, frm="b")], copy_from={"b": other_block})
