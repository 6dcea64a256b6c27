"""Tar bombs and spec-breaking entries: refused with a clear error, nothing left behind,
and the limits can be raised through the environment."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from minibox.errors import UserError
from minibox.store.layertar import extract_layer
from minibox.store.oci import MEDIA_LAYER, MEDIA_LAYER_GZIP
from minibox.store.untar import RATIO_GRACE, Limits

from .conftest import needs_root
from .test_extract import make_tar, write_blob

pytestmark = needs_root


@pytest.fixture
def dest(scratch):
    d = scratch / "dest"
    d.mkdir()
    return d


def _fresh(scratch):
    (scratch / "ok").mkdir()
    return scratch / "ok"


def _zeros_tar(size: int, entries: int = 1) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(entries):
            info = tarfile.TarInfo(f"f{i}")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    return buf.getvalue()


def test_compression_bomb_is_refused(scratch, dest):
    bomb = gzip.compress(_zeros_tar(RATIO_GRACE + (8 << 20)), compresslevel=9)
    blob = write_blob(scratch, bomb)
    with pytest.raises(UserError) as err:
        extract_layer(blob, MEDIA_LAYER_GZIP, dest)
    assert "compression bomb" in err.value.message
    assert "MINIBOX_LAYER_MAX_RATIO" in err.value.hint
    # a user who trusts it raises the limit, and the same blob unpacks
    extract_layer(blob, MEDIA_LAYER_GZIP, _fresh(scratch), Limits(max_ratio=100_000))
    assert (scratch / "ok" / "f0").stat().st_size == RATIO_GRACE + (8 << 20)


def test_size_limit_from_the_environment(scratch, dest, monkeypatch):
    blob = write_blob(scratch, _zeros_tar(3 << 20))
    monkeypatch.setenv("MINIBOX_LAYER_MAX_SIZE", "2m")
    with pytest.raises(UserError) as err:
        extract_layer(blob, MEDIA_LAYER, dest)
    assert "more than 2 MiB" in err.value.message and "possible tar bomb" in err.value.message
    monkeypatch.setenv("MINIBOX_LAYER_MAX_SIZE", "4m")
    extract_layer(blob, MEDIA_LAYER, _fresh(scratch))


def test_entry_count_limit(scratch, dest):
    blob = write_blob(scratch, _zeros_tar(0, entries=50))
    with pytest.raises(UserError, match="more than 10 entries"):
        extract_layer(blob, MEDIA_LAYER, dest, Limits(max_entries=10))


def test_bad_limit_values_are_user_errors():
    with pytest.raises(UserError, match="MINIBOX_LAYER_MAX_SIZE"):
        Limits.from_env({"MINIBOX_LAYER_MAX_SIZE": "lots"})
    assert Limits.from_env({"MINIBOX_LAYER_MAX_SIZE": "1g"}).max_size == 1 << 30


def test_raw_overlay_whiteout_device_is_refused(scratch, dest):
    blob = write_blob(scratch, make_tar([
        ("etc", tarfile.DIRTYPE, None),
        ("etc/passwd", tarfile.CHRTYPE, {"devmajor": 0, "devminor": 0})]))
    with pytest.raises(UserError) as err:
        extract_layer(blob, MEDIA_LAYER, dest)
    assert "'etc/passwd'" in err.value.message and "whiteout" in err.value.message


def test_devices_the_spec_allows_are_kept(scratch, dest):
    blob = write_blob(scratch, make_tar([
        ("dev", tarfile.DIRTYPE, None),
        ("dev/null", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3, "mode": 0o666}),
        ("dev/fifo", tarfile.FIFOTYPE, None)]))
    extract_layer(blob, MEDIA_LAYER, dest)
    st = os.lstat(dest / "dev" / "null")
    assert os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
