"""A small, fast, deterministic tar header emitter (POSIX ustar + PAX extensions).

Python's ``tarfile`` builds each header through ``TarInfo`` objects, looks up user and group
names and copies data in 16 KiB pieces; this writes the 512-byte header blocks directly.
Names and link targets are bytes (Linux file names need not be UTF-8).  Anything that does
not fit a ustar field (long names, big ids, sizes >= 8 GiB, negative mtimes, xattrs) goes into
a PAX extended header written just before the entry.  Owners are numeric only; uname and
gname stay empty, so the output depends on nothing but the tree.
"""

from __future__ import annotations

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)

REGTYPE = b"0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
XHDTYPE = b"x"

_MAX7 = 8 ** 7 - 1       # an 8-byte octal field
_MAX11 = 8 ** 11 - 1     # a 12-byte octal field
_PAX_NAME = b"././@PaxHeader"
_TAIL = b"ustar\x0000" + bytes(64)          # magic, version, uname, gname


def padding(size: int) -> bytes:
    """Zero bytes that round ``size`` up to a whole block."""
    return bytes(-size % BLOCK)


def header(name: bytes, *, mode: int, uid: int, gid: int, size: int, mtime: int,
           typeflag: bytes, linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
           xattrs: dict[bytes, bytes] | None = None) -> bytes:
    """The header block(s) for one entry: an optional PAX header, then the ustar header."""
    pax: list[tuple[bytes, bytes]] = []
    if len(name) > 100:
        pax.append((b"path", name))
    if len(linkname) > 100:
        pax.append((b"linkpath", linkname))
    if not 0 <= uid <= _MAX7:
        pax.append((b"uid", b"%d" % uid))
        uid = 0
    if not 0 <= gid <= _MAX7:
        pax.append((b"gid", b"%d" % gid))
        gid = 0
    if size > _MAX11:
        pax.append((b"size", b"%d" % size))
    if not 0 <= mtime <= _MAX11:
        pax.append((b"mtime", b"%d" % mtime))
        mtime = 0
    if xattrs:
        pax.extend((b"SCHILY.xattr." + k, xattrs[k]) for k in sorted(xattrs))
    block = _ustar(name[:100], mode & 0o7777, uid, gid, size if size <= _MAX11 else 0,
                   mtime, typeflag, linkname[:100], devmajor, devminor)
    if pax:
        return _pax_header(pax) + block
    return block


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
           typeflag: bytes, linkname: bytes, devmajor: int, devminor: int) -> bytes:
    head = b"".join((
        name.ljust(100, b"\0"),
        b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode, uid, gid, size, mtime),
        b"        ",
        typeflag,
        linkname.ljust(100, b"\0"),
        _TAIL,
        b"%07o\0%07o\0" % (devmajor & _MAX7, devminor & _MAX7),
        bytes(167),                                     # prefix + pad
    ))
    return b"%s%06o\0 %s" % (head[:148], sum(head), head[156:])


def _pax_header(records: list[tuple[bytes, bytes]]) -> bytes:
    if any(k in (b"path", b"linkpath") and not _is_utf8(v) for k, v in records):
        records = [(b"hdrcharset", b"BINARY")] + records
    body = b"".join(_pax_record(k, v) for k, v in records)
    return (_ustar(_PAX_NAME, 0o644, 0, 0, len(body), 0, XHDTYPE, b"", 0, 0)
            + body + padding(len(body)))


def _pax_record(key: bytes, value: bytes) -> bytes:
    payload = b" " + key + b"=" + value + b"\n"
    length = len(payload) + 1
    while len(b"%d" % length) + len(payload) != length:
        length = len(b"%d" % length) + len(payload)
    return b"%d%s" % (length, payload)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
