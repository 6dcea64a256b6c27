"""images.resolve remembers what it resolved, and notices a retag, a removal and a layer
that went missing."""

from __future__ import annotations

import pytest

from minibox.errors import NotFound, UserError
from minibox.runtime import images
from tests.runtime.images import break_layers, import_busybox


def test_resolve_is_cached_until_the_index_or_a_layer_changes(tmp_path):
    import_busybox(tmp_path, "bb", Cmd=["/bin/one"])
    first = images.resolve(tmp_path, "bb")
    assert images.resolve(tmp_path, "bb") is first          # no re-read of the store
    import_busybox(tmp_path, "bb", Cmd=["/bin/two"])          # retag: a new index
    second = images.resolve(tmp_path, "bb")
    assert second.digest != first.digest and second.config["Cmd"] == ["/bin/two"]
    from minibox.store import Store
    Store(tmp_path).untag("bb")                               # removed: a new index
    with pytest.raises(NotFound):
        images.resolve(tmp_path, "bb")
    import_busybox(tmp_path, "other")
    images.resolve(tmp_path, "other")
    break_layers(tmp_path, "other")
    with pytest.raises(UserError, match="cannot be used"):
        images.resolve(tmp_path, "other")
    with pytest.raises(NotFound):
        images.resolve(tmp_path, "nosuch")
