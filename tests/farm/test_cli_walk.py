"""The build commands against a real farm with bad input: one error line each, no traceback
(the container commands: tests/runtime/test_cli_walk.py)."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.farmkit import write_ctx
from tests.test_cli_errors import one_error

UNKNOWN_JOB = [("builds", "logs", "nope"), ("builds", "logs", "-f", "nope"),
               ("builds", "cancel", "nope")]


@pytest.mark.parametrize("args", UNKNOWN_JOB, ids=[" ".join(a) for a in UNKNOWN_JOB])
def test_unknown_build_job(farm, args):
    line = one_error(farm.cli(*args), *args)
    assert "no build job 'nope'" in line, line


def test_bad_build_input(farm, ctx, tmp_path):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    ENV X=1\n"})
    for args, message in ((("build", "-t", "Bad Tag!", ctx), "invalid"),
                          (("build", "-t", "x", "--target", "nope", ctx), "nope"),
                          (("build", "-t", "x", "-f", tmp_path / "none", ctx), "no MiniBox file"),
                          (("build", "-t", "x", tmp_path / "missing"), "is not a directory")):
        line = one_error(farm.cli(*args), *args)
        assert message in line, (args, line)


def test_bad_capability_xattr_in_a_base(farm, ctx):
    """A base whose file carries a security.capability the kernel refuses: the entry and
    the xattr are named; no EINVAL and no host path of the data root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        t.addfile(d)
        f = tarfile.TarInfo("bin/tool")
        f.size, f.mode = 3, 0o755
        f.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x02junk"}
        t.addfile(f, io.BytesIO(b"hi\n"))
    write_ctx(ctx, {"base.tar": buf.getvalue(),
                    "MiniBox": "BASE base.tar\nBLOCK a\n    ENV X=1\n"})
    r = farm.build(ctx, "badcap", check=False)
    assert r.returncode != 0
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    assert "'bin/tool'" in r.stderr and "security.capability" in r.stderr, r.stderr
    assert str(farm.root) not in r.stderr and "Errno" not in r.stderr, r.stderr
