"""index.json: tag normalization, one entry per name, locking across processes."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from minibox.errors import NotFound, StoreError, UserError
from minibox.store import Store, normalize_name
from minibox.store.oci import REF_NAME_ANNOTATION


@pytest.mark.parametrize("given, normal", [
    ("app", "app:latest"),
    ("app:1.0", "app:1.0"),
    ("library/app", "library/app:latest"),
    ("localhost:5000/team/app", "localhost:5000/team/app:latest"),
    ("localhost:5000/team/app:v2", "localhost:5000/team/app:v2"),
    ("ghcr.io/org/my-app_x:1.2.3-rc1", "ghcr.io/org/my-app_x:1.2.3-rc1"),
])
def test_normalize(given, normal):
    assert normalize_name(given) == normal


@pytest.mark.parametrize("bad", ["", "App", "app:", "a b", "../x", "app:-x", "/app", "app//x",
                                 "x" * 256])
def test_invalid_names(bad):
    with pytest.raises(UserError, match="invalid image name"):
        normalize_name(bad)


def _image(store, label: str):
    return store.write_image(None, {"Labels": {"l": label}}, [],
                             created="2024-01-01T00:00:00Z")


def test_tag_resolve_untag(store):
    desc = _image(store, "one")
    assert store.tag("app", desc) == "app:latest"
    for ref in ("app", "app:latest"):
        assert store.resolve(ref).digest == desc.digest
    assert store.resolve("app").name == "app:latest"
    index = json.loads(store.layout.index_json.read_text())
    assert [e["annotations"][REF_NAME_ANNOTATION] for e in index["manifests"]] == ["app:latest"]

    other = _image(store, "two")
    store.tag("app:latest", other)                  # retag: still one entry
    index = json.loads(store.layout.index_json.read_text())
    assert len(index["manifests"]) == 1
    assert index["manifests"][0]["digest"] == other.digest

    store.untag("app")
    with pytest.raises(NotFound) as err:
        store.resolve("app")
    assert err.value.message == "image 'app' not found" and err.value.hint
    with pytest.raises(NotFound):
        store.untag("app")


def test_resolve_by_digest(store):
    desc = _image(store, "d")
    assert store.resolve(desc.digest).name is None
    store.tag("x:1", desc)
    assert store.resolve(desc.digest).name == "x:1"
    assert store.resolve("x@" + desc.digest).digest == desc.digest
    with pytest.raises(NotFound):
        store.resolve("sha256:" + "2" * 64)


def test_tag_requires_stored_manifest(store):
    from minibox.store import Descriptor
    with pytest.raises(StoreError):
        store.tag("ghost", Descriptor("sha256:" + "3" * 64, 10, "x"))


def test_foreign_entries_are_kept(store):
    desc = _image(store, "f")
    with store._index.locked():
        index = json.loads(store.layout.index_json.read_text())
        index["manifests"].append({"mediaType": desc.media_type, "digest": desc.digest,
                                   "size": desc.size})          # untagged, e.g. from skopeo
        store.layout.index_json.write_text(json.dumps(index))
    store.tag("mine", desc)
    manifests = json.loads(store.layout.index_json.read_text())["manifests"]
    assert len(manifests) == 2
    assert [i.name for i in store.list_images()] == ["mine:latest"]


def test_corrupt_index_is_a_store_error(store):
    store.layout.index_json.write_text("{not json")
    with pytest.raises(StoreError, match="corrupt"):
        store.list_images()


def _tag_many(root: str, digest: str, size: int, media_type: str, worker: int,
              count: int) -> None:
    from pathlib import Path

    from minibox.store import Descriptor
    store = Store(Path(root))
    for i in range(count):
        store.tag(f"w{worker}/img{i}", Descriptor(digest, size, media_type))
        store.tag("shared", Descriptor(digest, size, media_type))


def test_concurrent_writers_lose_nothing(store):
    desc = _image(store, "c")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_tag_many, args=(str(store.root), desc.digest, desc.size,
                                                 desc.media_type, w, 15))
             for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    names = [i.name for i in store.list_images()]
    assert len(names) == 6 * 15 + 1
    assert names.count("shared:latest") == 1
    assert list(store.layout.tmp.iterdir()) == []
