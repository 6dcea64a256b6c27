"""A failed pull or load removes the blobs it added, and never one that something else
relies on by then: another running pull or load of the same content (which found the blob
stored, or began before it was written), or an image tagged meanwhile."""

from __future__ import annotations

import json
import threading

from minibox.space.hold import claim_blob, gc_lock, hold
from minibox.space.prune import undo_blobs
from minibox.store.oci import MEDIA_CONFIG, MEDIA_LAYER, MEDIA_MANIFEST, Descriptor


def _blob(store, data: bytes) -> str:
    return store.put_blob_bytes(data, MEDIA_LAYER).digest


def test_an_undo_removes_what_it_added_when_nothing_else_uses_it(store):
    with hold(store.root) as mine:
        added = _blob(store, b"only mine")
        assert undo_blobs(store, [added], mine) == [added]
    assert not store.has_blob(added)


def test_a_blob_another_running_operation_found_stored_is_kept(store):
    with hold(store.root) as failing:
        shared = _blob(store, b"both want this")
        with hold(store.root) as other:          # began after the blob was written,
            assert claim_blob(store.root, store.blob_path(shared))   # found it stored
            assert undo_blobs(store, [shared], failing) == []
            assert store.has_blob(shared)
            del other
    assert store.has_blob(shared)


def test_a_blob_written_after_another_operation_began_is_kept(store):
    """The other may have looked for it a moment ago, found nothing, and find it stored
    when it commits its own copy: it relies on it without having claimed it."""
    with hold(store.root):
        with hold(store.root) as failing:
            shared = _blob(store, b"written while the other ran")
            assert undo_blobs(store, [shared], failing) == []
    assert store.has_blob(shared)


def test_a_blob_an_image_tagged_meanwhile_uses_is_kept(store):
    with hold(store.root) as failing:
        layer = _blob(store, b"a layer")
        config = store.put_blob_bytes(json.dumps(
            {"architecture": "amd64", "os": "linux",
             "rootfs": {"type": "layers", "diff_ids": [layer]}}).encode(), MEDIA_CONFIG)
        body = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                           "config": config.to_oci(),
                           "layers": [{"mediaType": MEDIA_LAYER, "digest": layer,
                                       "size": 7}]}).encode()
        manifest = store.put_blob_bytes(body, MEDIA_MANIFEST)
        store.tag("localhost/other:1", Descriptor(manifest.digest, manifest.size,
                                                  MEDIA_MANIFEST))
        assert undo_blobs(store, [layer], failing) == []
    assert store.has_blob(layer)


def test_a_claim_does_not_make_a_missing_blob_and_waits_for_a_removal(store):
    missing = "sha256:" + "0" * 64
    assert not claim_blob(store.root, store.blob_path(missing))
    assert not store.blob_path(missing).exists()
    kept = _blob(store, b"claimed")
    claimed = threading.Event()
    with gc_lock(store.root):                    # a prune or an undo deciding
        t = threading.Thread(target=lambda: claim_blob(store.root, store.blob_path(kept))
                             and claimed.set())
        t.start()
        assert not claimed.wait(0.3)             # the claim waits until it is decided
    t.join(10)
    assert claimed.is_set()
