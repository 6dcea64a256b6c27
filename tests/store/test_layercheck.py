"""check_layer (what a pull or a load runs before it tags an image whose layers unpack on
first use) refuses exactly what the extractor refuses, and names the same entry."""

from __future__ import annotations

import gzip
import os
import tarfile

import pytest

from minibox.errors import UserError
from minibox.store.layercheck import check_layer
from minibox.store.layertar import extract_layer
from minibox.store.oci import MEDIA_LAYER
from minibox.store.untar import Limits

from .conftest import needs_root
from .test_extract import HOSTILE, make_tar, write_blob

pytestmark = needs_root


@pytest.mark.parametrize("entries, culprit", HOSTILE)
def test_hostile_entries_are_refused_without_writing(tmp_path, entries, culprit):
    outside = tmp_path / "outside"
    outside.mkdir()
    entries = [(n, t, e.format(outside=outside) if isinstance(e, str) else e)
               for n, t, e in entries]
    blob = write_blob(tmp_path, make_tar(entries, fmt=tarfile.GNU_FORMAT))
    with pytest.raises(UserError) as err:
        check_layer(blob, MEDIA_LAYER, "layer x")
    assert repr(culprit) in err.value.message and err.value.message.startswith("layer x")
    assert os.listdir(outside) == []


GOOD = [
    ("x", tarfile.DIRTYPE, None), ("x/inner", tarfile.REGTYPE, b"i"),
    ("x", tarfile.REGTYPE, b"now a file"),
    ("y", tarfile.REGTYPE, b"file"), ("y", tarfile.SYMTYPE, "/etc/target"),
    ("esc", tarfile.SYMTYPE, "/"), ("esc", tarfile.DIRTYPE, None), ("esc/ok", tarfile.REGTYPE, b"k"),
    ("d/deep/file", tarfile.REGTYPE, b"implied parents"),
    ("d/hard", tarfile.LNKTYPE, "d/deep/file"),
    ("d/.wh.gone", tarfile.REGTYPE, b""), ("d/deep/.wh..wh..opq", tarfile.REGTYPE, b""),
    ("fifo", tarfile.FIFOTYPE, None),
]


@pytest.mark.parametrize("compress", [lambda b: b, lambda b: gzip.compress(b, 6)])
def test_a_good_layer_passes_and_its_diff_id_is_the_extractors(tmp_path, compress):
    blob = write_blob(tmp_path, compress(make_tar(GOOD)))
    dest = tmp_path / "dest"
    dest.mkdir()
    want = extract_layer(blob, MEDIA_LAYER, dest)
    check_layer(blob, MEDIA_LAYER, "layer x")
    check_layer(blob, MEDIA_LAYER, "layer x", diff_id=want)
    with pytest.raises(UserError, match="unpacks to"):
        check_layer(blob, MEDIA_LAYER, "layer x", diff_id="sha256:" + "0" * 64)


def test_hardlinks_to_a_directory_and_raw_whiteouts_are_refused(tmp_path):
    blob = write_blob(tmp_path, make_tar([("d", tarfile.DIRTYPE, None),
                                          ("h", tarfile.LNKTYPE, "d")]), "a")
    with pytest.raises(UserError, match="hardlink to the directory 'd'"):
        check_layer(blob, MEDIA_LAYER, "layer a")
    blob = write_blob(tmp_path, make_tar([("w", tarfile.CHRTYPE,
                                           {"devmajor": 0, "devminor": 0})]), "b")
    with pytest.raises(UserError, match="0:0 character device"):
        check_layer(blob, MEDIA_LAYER, "layer b")


def test_limits_and_garbage(tmp_path):
    blob = write_blob(tmp_path, make_tar([(f"f{i}", tarfile.REGTYPE, b"") for i in range(20)]))
    with pytest.raises(UserError):
        check_layer(blob, MEDIA_LAYER, "layer x", limits=Limits(max_entries=10))
    garbage = write_blob(tmp_path, gzip.compress(b"this is not a tar" * 100), "g")
    with pytest.raises(UserError, match="not a valid"):
        check_layer(garbage, MEDIA_LAYER, "layer g")
