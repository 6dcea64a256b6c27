"""A layer entry with an xattr the kernel refuses (a malformed security.capability) is a
clear error naming the entry, not an EINVAL with host paths."""

from __future__ import annotations

import tarfile

import pytest

from minibox.errors import UserError
from minibox.store.layertar import extract_layer
from minibox.store.oci import MEDIA_LAYER

from .conftest import needs_root
from .test_extract import dest, make_tar, write_blob  # noqa: F401 (dest: a fixture)

pytestmark = needs_root


@pytest.mark.parametrize("value", ["\x01\x02junk", "\x00" * 40])
def test_malformed_capability_is_a_user_error(scratch, dest, value):  # noqa: F811
    blob = write_blob(scratch, make_tar([
        ("bin", tarfile.DIRTYPE, None),
        ("bin/tool", tarfile.REGTYPE, {"pax_headers": {
            "SCHILY.xattr.security.capability": value}}),
    ]))
    with pytest.raises(UserError) as err:
        extract_layer(blob, MEDIA_LAYER, dest)
    text = err.value.render()
    assert "'bin/tool'" in text and "security.capability" in text, text
    assert str(scratch) not in text and "/proc/self/fd" not in text, text
