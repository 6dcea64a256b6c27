"""The layer stream reader under extract_stream: the shapes compressed layers come in
(several gzip members, zero padding, chunks cut anywhere), and the ones it must refuse."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile

import pytest
import zstandard

from minibox.errors import UserError
from minibox.store.layertar import extract_stream
from minibox.store.oci import MEDIA_LAYER_GZIP

from .conftest import needs_root
from .test_extract import make_tar

pytestmark = needs_root

PAYLOAD = os.urandom(3 << 20) + b"text " * 400_000          # past one read and one step
RAW = make_tar([("d", tarfile.DIRTYPE, None), ("d/big", tarfile.REGTYPE, PAYLOAD),
                ("d/small", tarfile.REGTYPE, b"s\n")])


def chunks_of(data: bytes, size: int):
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    parts.reverse()
    return lambda: parts.pop() if parts else b""


def unpack(scratch, data: bytes, size: int = 1 << 20) -> str:
    dest = scratch / f"dest-{os.urandom(4).hex()}"
    dest.mkdir()
    diff_id = extract_stream(chunks_of(data, size), MEDIA_LAYER_GZIP, dest, "the layer")
    assert (dest / "d" / "big").read_bytes() == PAYLOAD
    assert (dest / "d" / "small").read_bytes() == b"s\n"
    return diff_id


WANT = "sha256:" + hashlib.sha256(RAW).hexdigest()


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20], ids=["1B", "7B", "4K", "1M"])
def test_chunks_cut_anywhere(scratch, size):
    data = gzip.compress(RAW, 1)
    if size < 4096:                          # byte-sized chunks: a short layer is enough
        data = gzip.compress(make_tar([("d", tarfile.DIRTYPE, None)]), 1)
        dest = scratch / "tiny"
        dest.mkdir()
        extract_stream(chunks_of(data, size), MEDIA_LAYER_GZIP, dest, "the layer")
        assert (dest / "d").is_dir()
        return
    assert unpack(scratch, data, size) == WANT


def test_several_gzip_members_and_zero_padding(scratch):
    half = len(RAW) // 2
    data = gzip.compress(RAW[:half], 1) + gzip.compress(RAW[half:], 6) + b"\0" * 5000
    assert unpack(scratch, data, 65536) == WANT


def test_zstd_frames(scratch):
    c = zstandard.ZstdCompressor()
    half = len(RAW) // 2
    assert unpack(scratch, c.compress(RAW[:half]) + c.compress(RAW[half:])) == WANT


@pytest.mark.parametrize("damage", ["truncated", "garbage after", "bad checksum"])
def test_damaged_gzip_is_refused(scratch, damage):
    data = bytearray(gzip.compress(RAW, 1))
    if damage == "truncated":
        data = data[:len(data) - 100]
    elif damage == "garbage after":
        data += b"not gzip"
    else:
        data[-8] ^= 0xFF                     # the CRC32 of the trailer
    dest = scratch / "dest"
    dest.mkdir()
    with pytest.raises(UserError, match="is not a valid"):
        extract_stream(chunks_of(bytes(data), 1 << 20), MEDIA_LAYER_GZIP, dest, "the layer")
