"""The helpers MiniBox has one of (issue 9.3): the atomic write, the passwd/group resolver,
the safe join inside a root, the /etc/hosts writer, and each process's settings."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibox import accounts, atomic, hostsfile, rootpath
from minibox.config import Settings

# --- atomic ----------------------------------------------------------------------------


def test_an_atomic_write_replaces_the_content_with_its_mode_and_leaves_no_temp(tmp_path):
    p = tmp_path / "f.json"
    p.write_text("old")
    atomic.write_json(p, {"b": 1, "a": [1, 2]}, mode=0o600)
    assert p.read_text() == '{"a":[1,2],"b":1}'
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    atomic.write_file(p, b"x" * 100_000, durable=False)
    assert p.read_bytes() == b"x" * 100_000 and os.listdir(tmp_path) == ["f.json"]


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temp(tmp_path):
    p = tmp_path / "f"
    p.write_text("old")

    def refuse(tmp):
        assert tmp.read_text() == "new"        # written in full before it is put in place
        raise PermissionError("no")
    with pytest.raises(PermissionError):
        atomic.write_file(p, "new", prepare=refuse)
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["f"]


def test_a_reader_never_sees_part_of_a_file_while_threads_write_it(tmp_path):
    p = tmp_path / "f.json"
    atomic.write_json(p, {"n": 0, "pad": "x" * 50_000})
    stop = threading.Event()

    def writer(k):
        n = 0
        while not stop.is_set():
            n += 1
            atomic.write_json(p, {"n": n, "by": k, "pad": "x" * 50_000}, durable=False)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(300):
            assert len(json.loads(p.read_text())["pad"]) == 50_000
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert os.listdir(tmp_path) == ["f.json"]


# --- accounts --------------------------------------------------------------------------
PASSWD = "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000::/home/app:/bin/sh\n" \
         "+nis::::::\nnohome:x:1001:1001\n"
GROUP = "root:x:0:\nwheel:x:10:app,root\napp:x:1000:\nstaff:x:50:app\n"


@pytest.mark.parametrize("spec,uid,gid,members,home", [
    ("", 0, 0, (10,), "/root"),
    ("app", 1000, 1000, (10, 50), "/home/app"),
    ("1000", 1000, 1000, (10, 50), "/home/app"),
    ("app:wheel", 1000, 10, (10, 50), "/home/app"),
    ("4242", 4242, 0, (), None),
    ("4242:50", 4242, 50, (), None),
    ("nohome", 1001, 1001, (), ""),
])
def test_a_user_spec_against_the_images_files(spec, uid, gid, members, home):
    a = accounts.resolve(spec, PASSWD, GROUP)
    assert (a.uid, a.gid, a.memberships, a.home) == (uid, gid, members, home)
    assert a.explicit_group == (":" in spec)


def test_unknown_names_and_ids_out_of_range_are_errors_never_root():
    with pytest.raises(accounts.UnknownName) as e:
        accounts.resolve("nobody", PASSWD, GROUP)
    assert (e.value.kind, e.value.name) == ("user", "nobody")
    with pytest.raises(accounts.UnknownName) as e:
        accounts.resolve("app:nogroup", PASSWD, GROUP)
    assert (e.value.kind, e.value.name) == ("group", "nogroup")
    with pytest.raises(accounts.IdOutOfRange):
        accounts.resolve(str(2**32), PASSWD, GROUP)
    # no files at all: root and numeric ids still work
    assert accounts.resolve("root", None, None).uid == 0
    assert accounts.resolve("7:8", None, None) == accounts.Account(7, 8, True, ())


def test_the_build_and_the_runtime_agree_on_a_user(tmp_path):
    from minibox.runtime import process
    from minibox.runtime.images import ResolvedImage
    from minibox.sandbox import users
    from minibox.wire.runtime import ContainerSpec
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    image = ResolvedImage("x", "x", "", {}, [str(tmp_path)])
    for spec in ("app", "1000:wheel", "root"):
        built = users.resolve_user(str(tmp_path), spec, 1)
        uid, gid, groups, _home = process.user(ContainerSpec(image="x", user=spec), image)
        assert (built.uid, built.gid) == (uid, gid)
        assert set(groups) <= set(built.groups) | set(accounts.resolve(
            spec, PASSWD, GROUP).memberships)


# --- rootpath --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree") / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "file").write_text("")
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../..", root / "climb")
    os.symlink("usr/lib", root / "lib")
    os.symlink("/../../../tmp", root / "out")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return str(root)


COMPONENTS = st.sampled_from(["..", ".", "", "etc", "abs", "climb", "lib", "out", "usr",
                              "file", "new", "loop1", "x"])


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(COMPONENTS, max_size=12), lead=st.booleans())
def test_a_safe_join_never_leaves_the_root(tree, parts, lead):
    path = ("/" if lead else "") + "/".join(parts)
    try:
        out = rootpath.resolve(tree, path)
    except rootpath.RootPathError:
        return                                        # a loop: refused, not followed
    assert out == tree or out.startswith(tree + "/")
    assert ".." not in out[len(tree):].split("/")
    # and what it names, resolved by the kernel, is inside too (no symlink left to escape)
    real = os.path.realpath(out)
    assert real == os.path.realpath(tree) or real.startswith(os.path.realpath(tree) + "/")


def test_a_safe_join_creates_what_is_missing_inside_the_root(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    os.symlink("/", root / "up")
    got = rootpath.resolve(str(root), "/up/a/b/f", create="file")
    assert got == f"{root}/a/b/f" and (root / "a/b/f").is_file()
    assert rootpath.resolve(str(root), "/up/../d", create="dir") == f"{root}/d"
    assert (root / "d").is_dir()


# --- /etc/hosts ------------------------------------------------------------------------
def test_hosts_on_its_own_network_and_on_the_hosts(tmp_path):
    own = hostsfile.hosts_text("web", host_network=False)
    assert own.startswith("127.0.0.1\tlocalhost\n") and own.endswith("127.0.1.1\tweb\n")
    host = tmp_path / "hosts"
    host.write_text("127.0.0.1 localhost\n10.1.1.1 web # the host\n")
    assert hostsfile.hosts_text("web", host_network=True, host_file=str(host)) == \
        host.read_text()
    assert hostsfile.hosts_text("other", host_network=True, host_file=str(host)).endswith(
        "# the host\n127.0.1.1\tother\n")


# --- settings --------------------------------------------------------------------------
def test_the_runtimes_settings_come_from_the_one_settings_object():
    s = Settings.from_env({"MINIBOX_CGROUP_PARENT": "/farm-a/", "MINIBOX_PYTHON_MONITOR": "1"})
    assert (s.cgroup_parent, s.python_monitor, s.no_zygote) == ("farm-a", True, False)
    assert Settings.from_env({}).cgroup_parent == "minibox"
