"""The build context: packing it (CLI), unpacking it safely (daemon), resolving and hashing
COPY sources (daemon cache keys, build sandbox).

Pure file handling, no kernel calls.  Module-level imports are stdlib and ``ignore`` only,
because the CLI imports this on every build; ``blake3`` is imported where it is used.

Trust: the unpacked context comes from a client.  ``unpack_context`` refuses absolute names,
``..``, writing through a symlink, hard links to anything but an earlier file of the
archive, relative symlinks that climb out of the context, and device/FIFO nodes, and keeps
to ``ContextLimits`` (size, file count, depth, compression ratio).  Symlinks with an
absolute target are kept: they are paths inside the image, never followed on the host
(``resolve_sources`` and ``read_context_file`` refuse anything whose host resolution leaves
the context, and ``walk_source`` never follows a link below a source).  No message echoes
anything read from outside the context (not even where a symlink leads).
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import BinaryIO

from minibox.builder.contextfile import printable as _printable
from minibox.builder.contextfile import size_text as _size
from minibox.builder.ignore import IGNORE_FILE, IgnoreMatcher
from minibox.errors import BuildFailed, ParseError, UserError

CHUNK = 1 << 20                 # read/copy unit
THREADED_HASH_MIN = 8 << 20     # files this large are hashed with blake3's thread pool
_MAGIC = frozenset("*?[")

Walked = tuple[str, str, os.stat_result]      # (relative path, host path, lstat)


@dataclass(frozen=True)
class ContextSource:
    """One resolved COPY source: an existing file or directory inside the context."""
    source: str        # the COPY argument it came from, as written
    rel: str           # the matched path relative to the context root ("." = the root);
                       # its name is the one a copy into a directory uses
    path: str          # absolute host path to read, symlinks resolved (inside the context)
    is_dir: bool
    context_dir: str   # the context root (realpath)


@dataclass(frozen=True)
class ContextLimits:
    """What a build context may hold (MINIBOX_CONTEXT_MAX_*; see minibox/config.py)."""
    max_bytes: int = 8 << 30        # file content, uncompressed
    max_files: int = 1_000_000      # entries of every kind
    max_depth: int = 256            # path components of an entry
    max_ratio: int = 100            # expanded bytes per byte received (gzip/xz/bz2 bombs)

    RATIO_FLOOR = 1 << 20           # the ratio is checked once this much has been expanded


def _too_big(what: str, limit: str, env: str) -> UserError:
    return UserError(f"the build context is too large: {what}",
                     hint=f"the daemon's limit is {limit} ({env}); leave files out with "
                          f"{IGNORE_FILE}, or raise the limit")


class _Budget:
    """Counts a context against its limits while it is packed or unpacked."""

    def __init__(self, limits: ContextLimits):
        self.limits = limits
        self.files = 0
        self.bytes = 0

    def entry(self, name: str) -> None:
        self.files += 1
        lim = self.limits
        if self.files > lim.max_files:
            raise _too_big(f"more than {lim.max_files} files and directories",
                           f"{lim.max_files} entries", "MINIBOX_CONTEXT_MAX_FILES")
        depth = name.count("/") + 1
        if depth > lim.max_depth:
            raise UserError(f"the build context is too deep: {_printable(name[:80])}... is "
                            f"{depth} levels down",
                            hint=f"the daemon's limit is {lim.max_depth} levels "
                                 f"(MINIBOX_CONTEXT_MAX_DEPTH); leave it out with {IGNORE_FILE}")

    def content(self, n: int, received: int = 0) -> None:
        """``n`` more bytes of file content; ``received``: bytes of the upload read so far
        (0 when it is not compressed)."""
        self.bytes += n
        lim = self.limits
        if self.bytes > lim.max_bytes:
            raise _too_big(f"more than {_size(lim.max_bytes)} of files",
                           _size(lim.max_bytes), "MINIBOX_CONTEXT_MAX_SIZE")
        if received and self.bytes > lim.RATIO_FLOOR and self.bytes > lim.max_ratio * received:
            raise UserError("the build context expands more than "
                            f"{lim.max_ratio} times (a compression bomb?)",
                            hint="send it uncompressed, or raise MINIBOX_CONTEXT_MAX_RATIO")


@dataclass(frozen=True)
class PackStats:
    entries: int
    bytes: int         # file content bytes


# ---- walking ---------------------------------------------------------------------------

def _wanted(st: os.stat_result) -> bool:
    m = st.st_mode
    return stat.S_ISREG(m) or stat.S_ISDIR(m) or stat.S_ISLNK(m)


def iter_tree(top: str, top_rel: str, matcher: IgnoreMatcher) -> Iterator[Walked]:
    """Everything below directory ``top`` (not ``top`` itself) that the context holds:
    depth first, names sorted, symlinks not followed, sockets/FIFOs/devices skipped.
    ``top_rel`` is ``top`` relative to the context root, for the ignore rules.  A directory
    that is ignored but holds a re-included path is yielded just before that path.
    Iterative, so no depth limit."""
    prefix = "" if top_rel in ("", ".") else top_rel.strip("/") + "/"
    stack = [(_listdir(top), "")]
    pending: list[tuple[int, Walked]] = []      # ignored dirs entered, not yet yielded
    while stack:
        entries, rel = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            if pending and pending[-1][0] == len(stack):
                pending.pop()                   # nothing below it was re-included
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not _wanted(st):
            continue
        sub = rel + entry.name
        is_dir = stat.S_ISDIR(st.st_mode)
        if matcher and matcher.ignored(prefix + sub, is_dir):
            if is_dir and not matcher.can_skip_dir(prefix + sub):
                pending.append((len(stack), (sub, entry.path, st)))
                stack.append((_listdir(entry.path), sub + "/"))
            continue
        for _, walked in pending:
            yield walked
        pending.clear()
        yield sub, entry.path, st
        if is_dir:
            stack.append((_listdir(entry.path), sub + "/"))


def _listdir(path: str) -> Iterator[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return iter(sorted(it, key=lambda e: e.name))
    except OSError as exc:
        raise UserError(f"cannot read directory {path}: {exc.strerror}",
                        hint=f"fix its permissions or list it in {IGNORE_FILE}") from None


# ---- packing (CLI) ---------------------------------------------------------------------

def pack_context(context_dir: str, fileobj: BinaryIO,
                 limits: ContextLimits | None = None) -> PackStats:
    """Write the context as an uncompressed tar stream to ``fileobj``, honouring
    .miniboxignore.  Deterministic order; modes, owners and symlinks kept; hard links are
    sent as regular files; sockets, FIFOs and devices are skipped.  With ``limits`` (the
    daemon packing a directory of its own machine), stops with a UserError past them."""
    if not os.path.isdir(context_dir):
        raise UserError(f"build context {context_dir} is not a directory")
    matcher = IgnoreMatcher.from_file(context_dir)
    out = _TarWriter(fileobj)
    budget = _Budget(limits) if limits else None
    entries = 0
    for rel, path, st in iter_tree(context_dir, "", matcher):
        if budget:
            budget.entry(rel)
            if stat.S_ISREG(st.st_mode):
                budget.content(st.st_size)
        try:
            out.add(rel, path, st)
        except OSError as exc:
            raise UserError(f"cannot send {rel} from the build context: "
                            f"{exc.strerror or exc}",
                            hint=f"fix its permissions, or list it in {IGNORE_FILE}") from None
        entries += 1
    out.close()
    return PackStats(entries=entries, bytes=out.content_bytes)


class _TarWriter:
    """A minimal streaming PAX tar writer: tarfile's own stream mode re-buffers every
    write, which made packing several times slower."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.total = 0
        self.content_bytes = 0
        self.buf = bytearray(CHUNK)

    def _write(self, data) -> None:
        self.out.write(data)
        self.total += len(data)

    def add(self, rel: str, path: str, st: os.stat_result) -> None:
        ti = tarfile.TarInfo(rel)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.mtime = int(st.st_mtime)
        if stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(path)
        else:
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb",
                      buffering=0) as f:
                ti.size = os.fstat(f.fileno()).st_size
                self._write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                self._copy(f, ti.size)
            return
        self._write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _copy(self, f, size: int) -> None:
        view = memoryview(self.buf)
        left = size
        while left:
            n = f.readinto(view[:min(left, CHUNK)])
            if not n:
                raise OSError("the file shrank while it was being read")
            self._write(view[:n])
            left -= n
        self.content_bytes += size
        if size % tarfile.BLOCKSIZE:
            self._write(bytes(tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def close(self) -> None:
        self._write(bytes(2 * tarfile.BLOCKSIZE))
        if self.total % tarfile.RECORDSIZE:
            self._write(bytes(tarfile.RECORDSIZE - self.total % tarfile.RECORDSIZE))
        flush = getattr(self.out, "flush", None)
        if flush:
            flush()


# ---- unpacking (daemon) ----------------------------------------------------------------

def unpack_context(fileobj: BinaryIO, dest_dir: str,
                   limits: ContextLimits | None = None) -> None:
    """Extract a context tar (as made by ``pack_context``; gzip, bzip2 or xz compressed or
    not) into ``dest_dir``, refusing anything that could write or point outside it, and
    anything past ``limits``.  Raises UserError saying what; the caller removes
    ``dest_dir``."""
    os.makedirs(dest_dir, exist_ok=True)
    counted = _Counted(fileobj)
    state = _Unpack(os.path.realpath(dest_dir), _Budget(limits or ContextLimits()), counted)
    try:
        with tarfile.open(fileobj=counted, mode="r|*") as tar:
            counted.compressed = getattr(tar.fileobj, "comptype", "tar") != "tar"
            for member in tar:
                state.member(tar, member)
        state.finish()
    except (tarfile.TarError, EOFError, ValueError, OverflowError) as exc:
        raise UserError(f"the build context is not a valid tar archive: {exc}") from None
    except OSError as exc:
        where = os.path.relpath(exc.filename, dest_dir) if isinstance(exc.filename, str) \
            else ""
        raise UserError(f"cannot unpack the build context: {exc.strerror or exc}"
                        + (f": {_printable(where[:200])}" if where else "")) from None


def _refuse(name: str, why: str) -> UserError:
    shown = repr(name[:200]) + ("..." if len(name) > 200 else "")
    return UserError(f"unsafe build context: {shown} {why}",
                     hint="the build context must only contain files inside it")


def safe_name(name: str) -> str | None:
    """``name`` as a clean relative path; None for the root.  Raises UserError if it is
    absolute or has a ``..`` component."""
    if name.startswith("/"):
        raise _refuse(name, "is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(name, "has a '..' component")
    return "/".join(parts) or None


class _Counted:
    """A reader that counts the bytes read through it (the upload as received)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.read_bytes = 0
        self.compressed = False

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.read_bytes += len(data)
        return data

    def received(self) -> int:
        """Bytes received so far when the stream is compressed, else 0 (no ratio)."""
        return self.read_bytes if self.compressed else 0


class _Unpack:
    def __init__(self, dest: str, budget: _Budget, counted: _Counted):
        self.dest = dest
        self.budget = budget
        self.counted = counted
        self.dirs_ok: set[str] = {""}        # relative dirs known to be real directories
        self.files: set[str] = set()         # regular files extracted (hard-link targets)
        self.dir_attrs: list[tuple[str, tarfile.TarInfo]] = []

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = safe_name(m.name)
        if name is None:
            return
        self.budget.entry(name)
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise _refuse(name, "is a device, FIFO or other special file")
        self._parents(name)
        path = os.path.join(self.dest, name)
        if m.isdir():
            self._mkdir(name, path)
            self.dir_attrs.append((path, m))
            return
        self._clear(path, name)
        if m.isreg():
            self._file(tar, m, name, path)
        elif m.issym():
            _check_symlink(name, m.linkname)
            os.symlink(m.linkname, path)
            _chown(path, m, follow=False)
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
        else:
            target = safe_name(m.linkname)
            if target not in self.files:
                raise _refuse(name, f"is a hard link to {m.linkname!r}, which is not an "
                                    "earlier file of the archive")
            os.link(os.path.join(self.dest, target), path, follow_symlinks=False)

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(len(parts)):
            rel = "/".join(parts[: i + 1])
            if rel in self.dirs_ok:
                continue
            self._mkdir(rel, os.path.join(self.dest, rel), mode=0o755)

    def _mkdir(self, rel: str, path: str, mode: int = 0o700) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, mode)
        else:
            if stat.S_ISLNK(st.st_mode):
                raise _refuse(rel, "would be written through a symlink")
            if not stat.S_ISDIR(st.st_mode):
                self._clear(path, rel)
                os.mkdir(path, mode)
        self.dirs_ok.add(rel)

    def _file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, name: str, path: str) -> None:
        src = tar.extractfile(m)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with open(os.open(path, flags, 0o600), "wb") as out:
            while chunk := src.read(CHUNK):
                self.budget.content(len(chunk), self.counted.received())
                out.write(chunk)
            out.flush()
            _chown(out.fileno(), m)
            os.fchmod(out.fileno(), m.mode & 0o7777)
            os.utime(out.fileno(), (m.mtime, m.mtime))
        self.files.add(name)

    def _clear(self, path: str, name: str) -> None:
        """Remove what is at ``path`` (a later member replaces an earlier one); never a
        directory."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise _refuse(name, "would replace a directory")
        os.unlink(path)
        self.files.discard(name)

    def finish(self) -> None:
        for path, m in reversed(self.dir_attrs):
            _chown(path, m)
            os.chmod(path, m.mode & 0o7777)
            os.utime(path, (m.mtime, m.mtime))


def _check_symlink(name: str, target: str) -> None:
    if not target:
        raise _refuse(name, "is a symlink with an empty target")
    if target.startswith("/"):
        return          # an in-image path; never followed on the host
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise _refuse(name, f"is a symlink to {target!r}, outside the build context")


def _chown(target: int | str, m: tarfile.TarInfo, follow: bool = True) -> None:
    try:
        if isinstance(target, int):
            os.fchown(target, m.uid, m.gid)
        else:
            os.chown(target, m.uid, m.gid, follow_symlinks=follow)
    except PermissionError:
        if os.geteuid() == 0:
            raise


# ---- COPY sources (daemon, sandbox) ----------------------------------------------------

def resolve_sources(context_dir: str, sources: list[str], line: int,
                    path: str) -> list[ContextSource]:
    """Expand COPY sources against the context: globs (sorted), directories, files.
    Raises ParseError (at ``path``:``line``) for a source that is absolute, leaves the
    context (by ``..`` or through a symlink) or matches nothing."""
    root = os.path.realpath(context_dir)
    matcher = IgnoreMatcher.from_file(root)
    out: list[ContextSource] = []
    for source in sources:
        out.extend(_resolve_one(root, matcher, source, line, path))
    return out


def _resolve_one(root: str, matcher: IgnoreMatcher, source: str, line: int,
                 path: str) -> list[ContextSource]:
    def fail(message: str, hint: str | None = None) -> ParseError:
        return ParseError(_printable(message), path=path, line_no=line, hint=hint)

    if source.startswith("/"):
        raise fail(f"COPY source '{source}' is an absolute path",
                   hint="sources are relative to the build context root, e.g. "
                        f"'{source.lstrip('/') or '.'}'")
    rel = posixpath.normpath(source)
    if rel == ".." or rel.startswith("../"):
        raise fail(f"COPY source '{source}' is outside the build context",
                   hint="a build can only copy files from inside its context directory")
    matches = _glob(root, rel, matcher) if _MAGIC & set(rel) else [rel]
    if not matches:
        raise fail(f"COPY source '{source}' not found in the build context",
                   hint="the pattern matches no file in the context")
    return [_resolve_path(root, matcher, m, source, fail) for m in matches]


def _resolve_path(root: str, matcher: IgnoreMatcher, rel: str, source: str,
                  fail: Callable[..., ParseError]) -> ContextSource:
    full = root if rel == "." else os.path.join(root, rel)
    try:
        is_dir = stat.S_ISDIR(os.lstat(full).st_mode)
    except OSError:
        is_dir = None
    if is_dir is None or matcher.ignored(rel, is_dir):
        raise fail(f"COPY source '{source}' not found in the build context",
                   hint=_ignore_hint(matcher, rel, bool(is_dir)))
    real = os.path.realpath(full)
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise fail(f"COPY source '{source}' leads through a symlink outside the build "
                   "context", hint="copy the file into the context, or copy the link's target "
                                   "path instead")
    try:
        st = os.stat(real)
    except OSError:
        raise fail(f"COPY source '{source}' is a broken symlink") from None
    is_dir = stat.S_ISDIR(st.st_mode)
    if not (is_dir or stat.S_ISREG(st.st_mode)):
        raise fail(f"COPY source '{source}' is not a regular file or directory")
    real_rel = os.path.relpath(real, root)
    if real_rel != rel and matcher.ignored(real_rel, is_dir):
        raise fail(f"COPY source '{source}' not found in the build context",
                   hint=_ignore_hint(matcher, real_rel, is_dir))
    return ContextSource(source=source, rel=rel, path=real, is_dir=is_dir, context_dir=root)


def _ignore_hint(matcher: IgnoreMatcher, rel: str, is_dir: bool) -> str | None:
    pat = matcher.deciding(rel, is_dir) if matcher else None
    if pat is None or pat.negate:
        return None
    return f"{IGNORE_FILE} line {pat.line} ({pat.text!r}) excludes it from the build context"


def _glob(root: str, pattern: str, matcher: IgnoreMatcher) -> list[str]:
    """Context paths matching ``pattern`` segment by segment (``*`` never crosses ``/``,
    dot files included), sorted; ignored paths and special files (never part of a sent
    context) left out.  Matched symlinks are checked like any source by the caller."""
    found = [""]
    segments = pattern.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        nxt = []
        for rel in found:
            base = os.path.join(root, rel) if rel else root
            for name in _matching_names(base, seg):
                sub = rel + "/" + name if rel else name
                if last or os.path.isdir(os.path.join(base, name)):
                    nxt.append(sub)
        found = nxt
    out = []
    for rel in found:
        st = os.lstat(os.path.join(root, rel))
        if _wanted(st) and not matcher.ignored(rel, os.path.isdir(os.path.join(root, rel))):
            out.append(rel)
    return sorted(out)


def _matching_names(base: str, seg: str) -> list[str]:
    if not _MAGIC & set(seg):
        return [seg] if os.path.lexists(os.path.join(base, seg)) else []
    try:
        names = os.listdir(base)
    except OSError:
        return []
    return sorted(n for n in names if fnmatchcase(n, seg))


# ---- hashing (cache keys) --------------------------------------------------------------

def walk_source(source: ContextSource,
                matcher: IgnoreMatcher | None = None) -> Iterator[Walked]:
    """The source's root (relative path ".") and, for a directory, everything below it
    that the context holds (see ``iter_tree``).  Links below the root are not followed."""
    st = os.stat(source.path)
    yield ".", source.path, st
    if source.is_dir:
        if matcher is None:
            matcher = IgnoreMatcher.from_file(source.context_dir)
        yield from iter_tree(source.path, os.path.relpath(source.path, source.context_dir),
                             matcher)


def hash_sources(sources: list[ContextSource]) -> str:
    """blake3 hex digest of the sources' content: for every entry, in walk order, its
    relative path, type, permission bits (setuid/setgid/sticky included), uid, gid,
    symlink target and bytes.  Never the mtime."""
    import blake3

    h = blake3.blake3()
    matchers: dict[str, IgnoreMatcher] = {}
    for src in sources:
        if src.context_dir not in matchers:
            matchers[src.context_dir] = IgnoreMatcher.from_file(src.context_dir)
        h.update(b"source\0" + os.fsencode(src.rel) + b"\0")
        try:
            for rel, path, st in walk_source(src, matchers[src.context_dir]):
                h.update(_entry_header(rel, path, st))
                if stat.S_ISREG(st.st_mode):
                    h.update(_file_digest(path, blake3))
        except OSError as exc:
            raise BuildFailed(f"COPY source '{src.source}' changed while it was read: "
                              f"{exc.strerror or exc}") from None
    return h.hexdigest()


def _entry_header(rel: str, path: str, st: os.stat_result) -> bytes:
    mode = st.st_mode
    kind = b"d" if stat.S_ISDIR(mode) else b"l" if stat.S_ISLNK(mode) else b"f"
    link = os.fsencode(os.readlink(path)) if kind == b"l" else b""
    size = st.st_size if kind == b"f" else 0
    fields = [kind, os.fsencode(rel), b"%o" % stat.S_IMODE(mode), b"%d" % st.st_uid,
              b"%d" % st.st_gid, link, b"%d" % size]
    return b"\0".join(fields) + b"\0"


def _file_digest(path: str, blake3) -> bytes:
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb",
              buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        h = blake3.blake3(max_threads=blake3.blake3.AUTO if size >= THREADED_HASH_MIN else 1)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.digest()
