"""A layer checked without being unpacked: what a pull or a load does before it tags an
image whose layers are unpacked only on first use.

``check_layer`` reads the blob once (inflated as ``extract_layer`` would, under the same
``Limits``), walks its tar headers and refuses, with the extractor's own words, every entry
the extractor would refuse: absolute or ``..`` names, an entry below a symlink or a file of
the layer, a hardlink to something not earlier in the layer, a malformed whiteout, a raw
0:0 character device, and tar bombs (bytes, entries, ratio); given the image config's
diff_id, it checks that too (a load does; a pull leaves it to the first unpack).  So a hostile archive or registry is refused when the
user pulls or loads it, not later at a run; the extractor still checks everything again
when it unpacks (``untar.LayerExtractor``).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import zstandard

from minibox.errors import UserError
from minibox.store.layerreader import INFLATE_ERRORS, LayerReader, file_chunks, open_tar
from minibox.store.untar import OPAQUE_MARKER, WHITEOUT_PREFIX, Limits, check_device, entry_parts

__all__ = ["check_layer", "LayerChecker"]

_DIR, _OTHER = "d", "o"


class LayerChecker:
    """The extractor's refusals on a stream of tar headers: what each path of the layer is
    (directory or not) is remembered instead of written."""

    def __init__(self, limits: Limits):
        self._limits = limits
        self._kinds: dict[tuple[bytes, ...], str] = {}

    def check_all(self, tar: tarfile.TarFile) -> int:
        count = 0
        for member in tar:
            count += 1
            self._limits.check_entries(count, "the layer")
            self._member(member)
        return count

    def _member(self, m: tarfile.TarInfo) -> None:
        parts = entry_parts(m.name)
        if not parts:
            return
        self._parents(parts[:-1], m.name)
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE_MARKER or base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
                return
            target = base[len(WHITEOUT_PREFIX):]
            if target in (b"", b".", b".."):
                raise UserError(f"layer entry {m.name!r} is a malformed whiteout")
            self._kinds[parts[:-1] + (target,)] = _OTHER
            return
        if m.islnk():
            target = entry_parts(m.linkname, "hardlink target")
            if not target:
                raise UserError(f"layer entry {m.name!r} is a hardlink to the layer root")
            if self._kinds.get(target) == _DIR:
                raise UserError(f"layer entry {m.name!r} is a hardlink to the directory "
                                f"{m.linkname!r}")
            if self._kinds.get(target) != _OTHER:
                raise UserError(f"layer entry {m.name!r} is a hardlink to {m.linkname!r}, "
                                f"which is not earlier in the layer")
        elif m.ischr() or m.isblk():
            check_device(m)
        self._kinds[parts] = _DIR if m.isdir() else _OTHER

    def _parents(self, parts: tuple[bytes, ...], name: str) -> None:
        """Every directory above an entry is one (or will be made one), never a symlink or
        a file an earlier entry put there."""
        for i in range(1, len(parts) + 1):
            kind = self._kinds.get(parts[:i])
            if kind is None:
                self._kinds[parts[:i]] = _DIR          # an implied parent
            elif kind != _DIR:
                where = b"/".join(parts[:i]).decode(errors="replace")
                raise UserError(f"layer entry {name!r} lies under {where!r}, which is not a "
                                f"directory (a symlink is never followed)")


def check_layer(blob_path: Path, media_type: str, label: str, diff_id: str | None = None,
                limits: Limits | None = None) -> None:
    """Check the stored layer blob at ``blob_path`` as ``extract_layer`` would unpack it;
    with ``diff_id``, also that it unpacks to that (without, the stream is not hashed: the
    first unpack checks the diff_id anyway, and a pull's time is mostly this hash)."""
    limits = limits or Limits.from_env()
    with open(blob_path, "rb", buffering=0) as raw:
        try:
            reader = LayerReader(file_chunks(raw), limits, media_type or "layer",
                                 hashed=diff_id is not None)
            LayerChecker(limits).check_all(open_tar(reader))
            reader.drain()
        except (tarfile.TarError, EOFError, zstandard.ZstdError, *INFLATE_ERRORS) as e:
            raise UserError(f"{label} is not a valid {media_type or 'layer'} archive: "
                            f"{e}") from e
        except UserError as e:
            raise UserError(f"{label}: {e.message}", hint=e.hint) from None
    if diff_id is not None and reader.digest != diff_id:
        raise UserError(f"{label} unpacks to {reader.digest}, not the {diff_id} its image "
                        f"config names", hint="the image is damaged; nothing was stored")
