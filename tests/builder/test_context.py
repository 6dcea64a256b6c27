"""Build context: .miniboxignore, packing, safe unpacking, COPY source resolution, hashing."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from minibox.builder import context as ctx
from minibox.builder.context import (hash_sources, pack_context, resolve_sources, safe_name,
                                   unpack_context, walk_source)
from minibox.builder.ignore import IgnoreMatcher, compile_pattern
from minibox.errors import ParseError, UserError

ROOT = os.geteuid() == 0


def write(path: Path, text: str = "x", mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def matcher(*lines: str) -> IgnoreMatcher:
    return IgnoreMatcher.from_lines(list(lines))


def pack_names(context_dir: Path) -> list[str]:
    buf = io.BytesIO()
    pack_context(str(context_dir), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        return tar.getnames()


# ---- .miniboxignore -----------------------------------------------------------------------

@pytest.mark.parametrize("pattern,path,is_dir,expected", [
    ("*.log", "a.log", False, True),
    ("*.log", "sub/a.log", False, False),             # anchored at the root, like Docker
    ("**/*.log", "sub/deep/a.log", False, True),
    ("**/*.log", "a.log", False, True),                # ** matches zero directories
    ("/build", "build", True, True),                   # a leading / changes nothing
    ("./build", "build/x", False, True),
    ("build", "build/x/y.o", False, True),             # a match covers everything below
    ("build/", "build", True, True),                   # trailing / matches directories ...
    ("build/", "build", False, False),                 # ... only
    ("build/", "build/file", False, True),
    ("a/**/b", "a/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("a/**", "a/x/y", False, True),
    ("a/**", "a", True, False),
    ("?.txt", "a.txt", False, True),
    ("?.txt", "ab.txt", False, False),
    ("*", "a/b", False, True),
    ("a*/b", "ax/b", False, True),
    ("a*/b", "a/x/b", False, False),                   # * does not cross /
    ("[a-c]x", "bx", False, True),
    ("[a-c]x", "dx", False, False),
    ("[!a-c]x", "dx", False, True),
    ("[^a-c]x", "ax", False, False),
    ("[!a]", "/", False, False),
    (r"\*x", "*x", False, True),
    (r"\*x", "ax", False, False),
    ("node_modules", "node_modules", True, True),
    ("*.md", "README.md", False, True),
    ("a.b", "axb", False, False),                      # . is literal
    ("(x)|y", "(x)|y", False, True),                   # regex metacharacters are literal
])
def test_ignore_patterns(pattern, path, is_dir, expected):
    assert matcher(pattern).ignored(path, is_dir) is expected


def test_ignore_negation_last_match_wins():
    m = matcher("*.md", "!README.md", "docs", "!docs/keep.md", "docs/keep.md")
    assert m.ignored("a.md") and not m.ignored("README.md")
    assert m.ignored("docs/x") and m.ignored("docs/keep.md")        # re-excluded by the last
    m = matcher("docs", "!docs/keep.md")
    assert not m.ignored("docs/keep.md") and m.ignored("docs/other.md") and m.ignored("docs", True)


def test_ignore_comments_blank_lines_whitespace():
    m = matcher("# a comment", "", "   ", "  *.tmp  ", "#notacomment.tmp")
    assert len(m.patterns) == 1 and m.ignored("x.tmp") and not m.ignored("x.tmpl")


def test_ignore_does_not_exclude_minibox_and_ignore_file_by_default():
    m = matcher("foo")
    assert not m.ignored("MiniBox") and not m.ignored(".miniboxignore")


def test_ignore_empty_matcher_is_falsy_and_ignores_nothing():
    m = IgnoreMatcher()
    assert not m and not m.ignored("anything", True) and not m.can_skip_dir("x")


def test_ignore_deciding_pattern():
    m = matcher("*.log", "!keep.log")
    assert m.deciding("a.log", False).line == 1
    assert m.deciding("keep.log", False).negate
    assert m.deciding("a.txt", False) is None


@pytest.mark.parametrize("bad", ["[abc", "!", "abc\\", "[z-a]"])
def test_ignore_bad_patterns_name_the_line(bad):
    with pytest.raises(ParseError) as info:
        IgnoreMatcher.from_lines(["ok", bad])
    assert info.value.line_no == 2 and ".miniboxignore" in str(info.value)


def test_ignore_compile_pattern_cleaning():
    assert compile_pattern("  ") is None and compile_pattern("# x") is None
    assert compile_pattern("/") is None and compile_pattern(".") is None
    assert compile_pattern("a//b/./c/").segments == ("a", "b", "c")


def test_can_skip_dir():
    assert matcher("node_modules").can_skip_dir("node_modules")
    assert not matcher("src").can_skip_dir("node_modules")           # not ignored at all
    m = matcher("docs", "!docs/keep.md")
    assert not m.can_skip_dir("docs")                                 # keep.md is below
    m = matcher("docs", "vendor", "!docs/keep.md")
    assert m.can_skip_dir("vendor")                                   # negation is elsewhere
    assert not matcher("a", "!**/x").can_skip_dir("a")                # ** may match anything
    assert not matcher("a/b", "!a").can_skip_dir("a/b")               # ancestor re-included
    assert matcher("a", "!b*/x").can_skip_dir("a")
    assert not matcher("a", "!a*/x").can_skip_dir("a")


def test_ignore_from_file(tmp_path):
    assert not IgnoreMatcher.from_file(str(tmp_path))
    write(tmp_path / ".miniboxignore", "*.o\n!keep.o\n")
    m = IgnoreMatcher.from_file(str(tmp_path))
    assert m.ignored("x.o") and not m.ignored("keep.o")


# ---- packing --------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path) -> Path:
    c = tmp_path / "ctx"
    write(c / "MiniBox", "BASE alpine\n")
    write(c / "app.js", "console.log(1)\n", 0o644)
    write(c / "bin/run.sh", "#!/bin/sh\n", 0o4755)
    write(c / "src/lib/util.js", "u")
    write(c / "node_modules/dep/index.js", "big")
    write(c / "docs/keep.md", "keep")
    write(c / "docs/drop.md", "drop")
    write(c / "debug.log", "log")
    (c / "shared").mkdir()
    os.chmod(c / "shared", 0o1777)
    os.symlink("app.js", c / "link-to-app")
    os.symlink("/etc", c / "etc-link")
    os.link(c / "app.js", c / "hardlink.js")
    os.mkfifo(c / "fifo")
    write(c / ".miniboxignore", "node_modules\n*.log\ndocs\n!docs/keep.md\n")
    return c


def test_pack_honours_ignore_and_is_sorted(tree):
    assert pack_names(tree) == [
        ".miniboxignore", "MiniBox", "app.js", "bin", "bin/run.sh", "docs", "docs/keep.md",
        "etc-link", "hardlink.js", "link-to-app", "shared", "src", "src/lib", "src/lib/util.js"]


def test_pack_keeps_metadata(tree):
    if ROOT:
        os.lchown(tree / "src/lib/util.js", 1234, 5678)
    buf = io.BytesIO()
    stats = pack_context(str(tree), buf)
    assert stats.entries == 14
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["bin/run.sh"].mode == 0o4755
        assert members["shared"].isdir() and members["shared"].mode == 0o1777
        assert members["link-to-app"].issym() and members["link-to-app"].linkname == "app.js"
        assert members["etc-link"].issym() and members["etc-link"].linkname == "/etc"
        assert members["hardlink.js"].isreg() and members["hardlink.js"].size == 15
        assert tar.extractfile("app.js").read() == b"console.log(1)\n"
        if ROOT:
            assert (members["src/lib/util.js"].uid, members["src/lib/util.js"].gid) == (1234, 5678)


def test_pack_skips_sockets(tmp_path):
    c = tmp_path / "c"
    write(c / "a", "a")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(c / "sock"))
        assert pack_names(c) == ["a"]
    finally:
        s.close()


def test_pack_is_deterministic(tree):
    one, two = io.BytesIO(), io.BytesIO()
    pack_context(str(tree), one)
    pack_context(str(tree), two)
    assert one.getvalue() == two.getvalue()
    assert len(one.getvalue()) % tarfile.RECORDSIZE == 0


def test_pack_does_not_enter_skippable_dirs(tmp_path):
    c = tmp_path / "c"
    write(c / "keep", "k")
    (c / "locked").mkdir()
    write(c / "locked/x", "x")
    write(c / ".miniboxignore", "locked\n")
    os.chmod(c / "locked", 0)
    try:
        assert pack_names(c) == [".miniboxignore", "keep"]
    finally:
        os.chmod(c / "locked", 0o755)


def test_pack_empty_context_and_odd_names(tmp_path):
    c = tmp_path / "c"
    c.mkdir()
    assert pack_names(c) == []
    long = "d" * 120 + "/" + "f" * 150
    write(c / long, "long")
    bad = os.fsdecode(b"caf\xe9")               # not UTF-8 on disk
    write(c / bad, "latin1")
    out = tmp_path / "out"
    buf = io.BytesIO()
    pack_context(str(c), buf)
    buf.seek(0)
    unpack_context(buf, str(out))
    assert (out / long).read_text() == "long"
    assert (out / bad).read_text() == "latin1"


def test_pack_not_a_directory(tmp_path):
    with pytest.raises(UserError):
        pack_context(str(tmp_path / "missing"), io.BytesIO())


def test_pack_big_file_roundtrip(tmp_path):
    c = tmp_path / "c"
    c.mkdir()
    data = os.urandom(3 * ctx.CHUNK + 123)
    (c / "big").write_bytes(data)
    buf = io.BytesIO()
    assert pack_context(str(c), buf).bytes == len(data)
    buf.seek(0)
    unpack_context(buf, str(tmp_path / "out"))
    assert (tmp_path / "out/big").read_bytes() == data


def test_pack_imports_only_stdlib():
    import sys
    code = ("import sys, minibox.builder.context; "
            "bad = [m for m in ('blake3', 'minibox.mbfile.parser', 'httpx', 'fastapi') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ---- unpacking ------------------------------------------------------------------------

def test_roundtrip_keeps_modes_owners_links_mtime(tree, tmp_path):
    if ROOT:
        os.lchown(tree / "src/lib/util.js", 1234, 5678)
        os.lchown(tree / "link-to-app", 42, 43)
    os.utime(tree / "app.js", (1_000_000, 1_000_000))
    buf = io.BytesIO()
    pack_context(str(tree), buf)
    buf.seek(0)
    out = tmp_path / "out"
    unpack_context(buf, str(out))
    assert stat.S_IMODE(os.stat(out / "bin/run.sh").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(out / "shared").st_mode) == 0o1777
    assert os.readlink(out / "link-to-app") == "app.js"
    assert os.readlink(out / "etc-link") == "/etc"
    assert os.stat(out / "app.js").st_mtime == 1_000_000
    assert (out / "docs/keep.md").read_text() == "keep"
    assert not (out / "docs/drop.md").exists() and not (out / "node_modules").exists()
    if ROOT:
        st = os.stat(out / "src/lib/util.js")
        assert (st.st_uid, st.st_gid) == (1234, 5678)
        st = os.lstat(out / "link-to-app")
        assert (st.st_uid, st.st_gid) == (42, 43)


def make_tar(*members: tuple[tarfile.TarInfo, bytes | None], gz: bool = False) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def member(name: str, kind=tarfile.REGTYPE, linkname: str = "", mode: int = 0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info


@pytest.mark.parametrize("members,needle", [
    ([(member("/etc/evil"), b"x")], "absolute"),
    ([(member("../evil"), b"x")], "'..'"),
    ([(member("a/../../evil"), b"x")], "'..'"),
    ([(member("link", tarfile.SYMTYPE, "../../outside"), None)], "outside"),
    ([(member("d/link", tarfile.SYMTYPE, "../../x"), None)], "outside"),
    ([(member("hl", tarfile.LNKTYPE, "/etc/passwd"), None)], "absolute"),
    ([(member("hl", tarfile.LNKTYPE, "../x"), None)], "'..'"),
    ([(member("hl", tarfile.LNKTYPE, "later"), None), (member("later"), b"x")], "earlier"),
    ([(member("dev", tarfile.CHRTYPE), None)], "device"),
    ([(member("blk", tarfile.BLKTYPE), None)], "device"),
    ([(member("fifo", tarfile.FIFOTYPE), None)], "FIFO"),
    ([(member("esc", tarfile.SYMTYPE, "/tmp"), None), (member("esc/x"), b"x")], "symlink"),
    ([(member("d", tarfile.DIRTYPE), None), (member("d", tarfile.SYMTYPE, "/"), None)],
     "replace a directory"),
])
def test_unpack_refuses(tmp_path, members, needle):
    with pytest.raises(UserError) as info:
        unpack_context(make_tar(*members), str(tmp_path / "out"))
    assert needle in info.value.message
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_unpack_never_writes_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    tar = make_tar((member("sub", tarfile.SYMTYPE, str(outside)), None),
                   (member("sub/pwned"), b"x"))
    with pytest.raises(UserError):
        unpack_context(tar, str(tmp_path / "out"))
    assert not (outside / "pwned").exists()


def test_unpack_replacing_a_symlink_with_a_file_does_not_follow_it(tmp_path):
    victim = write(tmp_path / "victim", "safe")
    tar = make_tar((member("f", tarfile.SYMTYPE, str(victim)), None), (member("f"), b"new"))
    unpack_context(tar, str(tmp_path / "out"))
    assert victim.read_text() == "safe" and (tmp_path / "out/f").read_text() == "new"


def test_unpack_allows_safe_links_and_gzip(tmp_path):
    tar = make_tar((member("a/file"), b"data"), (member("a/hard", tarfile.LNKTYPE, "a/file"), None),
                   (member("a/rel", tarfile.SYMTYPE, "../a/file"), None),
                   (member("abs", tarfile.SYMTYPE, "/usr/bin/python3"), None),
                   (member("./", tarfile.DIRTYPE), None), gz=True)
    out = tmp_path / "out"
    unpack_context(tar, str(out))
    assert (out / "a/hard").read_text() == "data"
    assert os.stat(out / "a/hard").st_ino == os.stat(out / "a/file").st_ino
    assert os.readlink(out / "a/rel") == "../a/file"
    assert os.readlink(out / "abs") == "/usr/bin/python3"


def test_unpack_not_a_tar(tmp_path):
    with pytest.raises(UserError) as info:
        unpack_context(io.BytesIO(b"this is not a tar archive" * 100), str(tmp_path / "o"))
    assert "tar" in info.value.message


def test_unpack_truncated_tar(tmp_path):
    data = make_tar((member("f"), b"x" * 5000)).getvalue()[:1500]
    with pytest.raises(UserError):
        unpack_context(io.BytesIO(data), str(tmp_path / "o"))


def test_safe_name():
    assert safe_name("./a//b/./c/") == "a/b/c"
    assert safe_name(".") is None and safe_name("./") is None
    with pytest.raises(UserError):
        safe_name("/a")
    with pytest.raises(UserError):
        safe_name("a/../../b")


# ---- resolving COPY sources -----------------------------------------------------------

@pytest.fixture
def context(tmp_path) -> Path:
    c = tmp_path / "context"
    write(c / "package.json", "{}")
    write(c / ".env", "SECRET=1")
    write(c / "src/a.js", "a")
    write(c / "src/b.js", "b")
    write(c / "src/c.ts", "c")
    write(c / "src/sub/d.js", "d")
    write(c / "secret.key", "k")
    write(c / ".miniboxignore", "*.key\n")
    write(tmp_path / "outside.txt", "no")
    os.symlink("/etc", c / "etc-link")
    os.symlink("../outside.txt", c / "out-link")
    os.symlink("src", c / "src-link")
    os.symlink("missing", c / "broken")
    os.mkfifo(c / "pipe")
    return c


def rels(context: Path, *sources: str) -> list[str]:
    return [s.rel for s in resolve_sources(str(context), list(sources), 7, "MiniBox")]


def test_resolve_files_dirs_root(context):
    got = resolve_sources(str(context), ["package.json", "src", "."], 7, "MiniBox")
    assert [(s.rel, s.is_dir) for s in got] == [("package.json", False), ("src", True),
                                                (".", True)]
    assert got[0].path == os.path.join(os.path.realpath(context), "package.json")
    assert got[0].source == "package.json"


def test_resolve_globs_sorted_and_star_does_not_cross_slash(context):
    assert rels(context, "src/*.js") == ["src/a.js", "src/b.js"]
    assert rels(context, "*/*.js") == ["src-link/a.js", "src-link/b.js", "src/a.js", "src/b.js"]
    assert rels(context, "src/?.ts", "src/[ab].js") == ["src/c.ts", "src/a.js", "src/b.js"]
    assert rels(context, "src/*/d.js") == ["src/sub/d.js"]


def test_resolve_star_matches_dot_files_and_skips_ignored_and_special_files(tmp_path):
    c = tmp_path / "c"
    write(c / ".env", "e")
    write(c / "a.txt", "a")
    write(c / "x.key", "k")
    write(c / ".miniboxignore", "*.key\n")
    os.mkfifo(c / "pipe")
    assert rels(c, "*") == [".env", ".miniboxignore", "a.txt"]


def test_resolve_glob_matching_an_escaping_or_broken_link_is_an_error(context):
    with pytest.raises(ParseError) as info:
        resolve_sources(str(context), ["etc-*"], 2, "MiniBox")
    assert "symlink" in info.value.message
    with pytest.raises(ParseError) as info:
        resolve_sources(str(context), ["brok*"], 2, "MiniBox")
    assert "broken symlink" in info.value.message


def test_resolve_normalises_inner_dotdot(context):
    assert rels(context, "./src/../package.json") == ["package.json"]


def test_resolve_follows_symlinks_inside_the_context(context):
    (s,) = resolve_sources(str(context), ["src-link"], 1, "MiniBox")
    assert s.rel == "src-link" and s.is_dir
    assert s.path == os.path.join(os.path.realpath(context), "src")


@pytest.mark.parametrize("source,needle", [
    ("../outside.txt", "outside the build context"),
    ("src/../../outside.txt", "outside the build context"),
    ("..", "outside the build context"),
    ("/etc/passwd", "absolute path"),
    ("etc-link/passwd", "symlink"),
    ("etc-link", "symlink"),
    ("out-link", "symlink"),
    ("nope.txt", "not found in the build context"),
    ("*.nomatch", "not found in the build context"),
    ("broken", "broken symlink"),
    ("pipe", "not a regular file"),
])
def test_resolve_refuses(context, source, needle):
    with pytest.raises(ParseError) as info:
        resolve_sources(str(context), ["package.json", source], 7, "proj/MiniBox")
    err = info.value
    assert needle in err.message and err.line_no == 7 and err.path == "proj/MiniBox"
    assert str(err).startswith("proj/MiniBox:7: ")


def test_resolve_ignored_file_is_not_found_with_hint(context):
    with pytest.raises(ParseError) as info:
        resolve_sources(str(context), ["secret.key"], 3, "MiniBox")
    assert "not found" in info.value.message and ".miniboxignore" in info.value.hint
    assert "*.key" in info.value.hint


def test_resolve_glob_skips_ignored_files(context):
    assert rels(context, "s*") == ["src", "src-link"]          # not secret.key
    with pytest.raises(ParseError):
        resolve_sources(str(context), ["*.key"], 3, "MiniBox")


def test_resolve_symlink_into_ignored_path_is_not_found(context):
    os.symlink("secret.key", context / "alias")
    with pytest.raises(ParseError) as info:
        resolve_sources(str(context), ["alias"], 3, "MiniBox")
    assert "not found" in info.value.message


# ---- hashing --------------------------------------------------------------------------

def digest(context: Path, *sources: str) -> str:
    return hash_sources(resolve_sources(str(context), list(sources) or ["."], 1, "MiniBox"))


@pytest.fixture
def hashed(tmp_path) -> Path:
    c = tmp_path / "h"
    write(c / "app/main.py", "print(1)\n", 0o644)
    write(c / "app/run.sh", "#!/bin/sh\n", 0o755)
    os.symlink("main.py", c / "app/link")
    (c / "app/empty").mkdir()
    return c


def test_hash_is_stable_and_ignores_mtime_and_atime(hashed):
    before = digest(hashed)
    assert len(before) == 64 and before == digest(hashed)
    for p in [hashed / "app/main.py", hashed / "app", hashed / "app/empty"]:
        os.utime(p, (12345, 67890))
    os.utime(hashed / "app/link", (1, 1), follow_symlinks=False)
    assert digest(hashed) == before


def test_hash_does_not_depend_on_context_location(hashed, tmp_path):
    import shutil
    other = tmp_path / "elsewhere/ctx"
    shutil.copytree(hashed, other, symlinks=True)
    assert digest(other) == digest(hashed)


@pytest.mark.parametrize("change", [
    lambda c: (c / "app/main.py").write_text("print(2)\n"),
    lambda c: (c / "app/main.py").write_text("print(1)\n\n"),
    lambda c: os.chmod(c / "app/main.py", 0o600),
    lambda c: os.chmod(c / "app/run.sh", 0o4755),
    lambda c: os.chmod(c / "app", 0o1755),
    lambda c: os.chmod(c / "app/empty", 0o700),
    lambda c: (os.unlink(c / "app/link"), os.symlink("run.sh", c / "app/link")),
    lambda c: os.rename(c / "app/run.sh", c / "app/run2.sh"),
    lambda c: (c / "app/empty/new").mkdir(),
    lambda c: (c / "app/new.txt").write_text(""),
    lambda c: os.rmdir(c / "app/empty"),
])
def test_hash_changes_with_content_mode_links_names(hashed, change):
    before = digest(hashed)
    change(hashed)
    assert digest(hashed) != before


@pytest.mark.skipif(not ROOT, reason="changing owners needs root")
@pytest.mark.parametrize("uid,gid", [(1000, 0), (0, 1000)])
def test_hash_changes_with_owner(hashed, uid, gid):
    before = digest(hashed)
    os.lchown(hashed / "app/main.py", uid, gid)
    assert digest(hashed) != before
    os.lchown(hashed / "app/main.py", 0, 0)
    assert digest(hashed) == before
    os.lchown(hashed / "app/link", uid, gid)
    assert digest(hashed) != before


def test_hash_covers_which_sources_and_their_order(hashed):
    a = digest(hashed, "app/main.py")
    b = digest(hashed, "app/run.sh")
    assert a != b
    assert digest(hashed, "app/main.py", "app/run.sh") != digest(hashed, "app/run.sh",
                                                                 "app/main.py")


def test_hash_skips_ignored_files(hashed):
    before = digest(hashed, "app")
    write(hashed / ".miniboxignore", "app/*.tmp\n")
    write(hashed / "app/junk.tmp", "junk")
    assert digest(hashed, "app") == before
    (hashed / "app/junk.tmp").write_text("other junk")
    assert digest(hashed, "app") == before


def test_hash_big_file_uses_threads_and_is_content_sensitive(tmp_path):
    c = tmp_path / "big"
    c.mkdir()
    with open(c / "blob", "wb") as f:
        f.truncate(ctx.THREADED_HASH_MIN + 5 * ctx.CHUNK + 7)
    first = digest(c, "blob")
    assert digest(c, "blob") == first
    with open(c / "blob", "r+b") as f:
        f.seek(ctx.THREADED_HASH_MIN + 3)
        f.write(b"\x01")
    assert digest(c, "blob") != first


def test_walk_source_yields_root_then_sorted_entries_without_following_links(hashed):
    (src,) = resolve_sources(str(hashed), ["app"], 1, "MiniBox")
    walked = [rel for rel, _, _ in walk_source(src)]
    assert walked == [".", "empty", "link", "main.py", "run.sh"]
    link_stat = [st for rel, _, st in walk_source(src) if rel == "link"][0]
    assert stat.S_ISLNK(link_stat.st_mode)


def test_deep_trees_have_no_recursion_limit(tmp_path):
    c = tmp_path / "deep"
    c.mkdir()
    fd = os.open(c, os.O_RDONLY)
    try:
        for _ in range(1050):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
            f.write("leaf")
    finally:
        os.close(fd)
    try:
        buf = io.BytesIO()
        assert pack_context(str(c), buf).entries == 1051
        assert len(digest(c)) == 64
    finally:
        subprocess.run(["rm", "-rf", str(c)], check=True)   # too deep for shutil.rmtree


def test_unpack_later_member_replaces_file_and_hardlinks_follow_the_new_one(tmp_path):
    tar = make_tar((member("f"), b"old"), (member("f"), b"new"),
                   (member("h", tarfile.LNKTYPE, "f"), None))
    unpack_context(tar, str(tmp_path / "out"))
    assert (tmp_path / "out/h").read_text() == "new"


def test_unpack_file_then_directory_of_same_name(tmp_path):
    tar = make_tar((member("x"), b"file"), (member("x/y"), b"inside"),
                   (member("h", tarfile.LNKTYPE, "x"), None))
    with pytest.raises(UserError) as info:
        unpack_context(tar, str(tmp_path / "out"))
    assert "earlier file" in info.value.message


def test_unpack_absurd_owner_is_a_user_error(tmp_path):
    info = member("f")
    info.uid = 2 ** 40
    with pytest.raises(UserError):
        unpack_context(make_tar((info, b"x")), str(tmp_path / "out"))


def test_ignore_file_symlink_outside_context_is_refused(tmp_path):
    c = tmp_path / "c"
    c.mkdir()
    write(tmp_path / "secret", "[unbalanced secret line\n")
    os.symlink(tmp_path / "secret", c / ".miniboxignore")
    with pytest.raises(UserError) as info:
        IgnoreMatcher.from_file(str(c))
    assert "outside the build context" in info.value.message
    assert "secret line" not in info.value.render()


def test_ignore_file_symlink_inside_context_is_followed(tmp_path):
    c = tmp_path / "c"
    write(c / "ignore.txt", "*.o\n")
    os.symlink("ignore.txt", c / ".miniboxignore")
    assert IgnoreMatcher.from_file(str(c)).ignored("a.o")
