"""/images: list, inspect, remove; /blobs: content by digest (for workers on other hosts)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from minibox import refs
from minibox.api.deps import ImageStoreDep
from minibox.api.ndjson import NDJSON_200, stream_task
from minibox.errors import NotFound, UserError
from minibox.wire.api import ImageRef

router = APIRouter(tags=["images"])
BLOB_CHUNK = 1 << 20         # blobs to build workers: 1 MiB per read and send
BLOB_BATCH = 4 << 20         # blobs from build workers: 4 MiB per hand-over to the writing thread
Name = Annotated[ImageRef, Path(description="NAME[:TAG], NAME@DIGEST, a digest or an id")]
Digest = Annotated[str, Path(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256:<hex>")]


@router.get("/images")
def list_images(request: Request, store: ImageStoreDep) -> list[dict]:
    return [i.to_dict() if hasattr(i, "to_dict") else dict(i.__dict__)
            for i in store.list_images()]


@router.get("/images/{name:path}/json")
def inspect_image(request: Request, store: ImageStoreDep, name: Name) -> dict:
    """An image's record: id (config digest), digest (manifest), repo tags, created,
    platform, config, rootfs, layers, size, history; ``manifest`` and the whole OCI
    ``config`` too.  ``name``: NAME[:TAG], NAME@DIGEST, a digest or an id (prefix)."""
    img = _find(store, name)
    tags = sorted(t.name for t in store.list_images() if t.digest == img.digest)
    cfg = img.config
    size = img.descriptor.size + int(img.manifest["config"].get("size", 0)) + \
        sum(d.size for d in img.layers)
    return {"id": img.manifest["config"]["digest"], "digest": img.digest,
            "name": img.name or (tags[0] if tags else img.digest), "repo_tags": tags,
            "created": cfg.get("created"), "architecture": cfg.get("architecture"),
            "os": cfg.get("os"), "size": size, "rootfs": cfg.get("rootfs"),
            "layers": [d.to_oci() for d in img.layers], "history": cfg.get("history") or [],
            "manifest": img.manifest, "config": cfg}


def _find(store, name: str):
    """The image ``name`` names; NotFound (never a UserError) when there is none."""
    try:
        return store.resolve(refs.normalize(name) if "@" not in name and
                             not name.startswith("sha256:") else name)
    except (NotFound, UserError):
        pass
    hexpart = name[7:] if name.startswith("sha256:") else name
    if 4 <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart):
        hits = {}
        for summary in store.list_images():
            img = store.resolve(summary.name)
            if any(d.split(":")[-1].startswith(hexpart)
                   for d in (img.digest, img.manifest["config"]["digest"])):
                hits[img.digest] = img
        if len(hits) == 1:
            return next(iter(hits.values()))
    raise NotFound(f"no such image: {name}", hint="`minibox images` lists images")


@router.delete("/images/{name:path}")
def remove_image(request: Request, store: ImageStoreDep, name: Name, force: bool = False) -> dict:
    """Untag an image; with no tag and no container left on it, delete its content that
    no other image, container or cache entry uses.  A container's image is refused unless
    ``force`` (the container keeps its layers)."""
    from minibox.space.prune import remove_image as remove
    image = _find(store, name)
    tag = None
    if "@" not in name and not name.startswith("sha256:"):
        try:
            tag = refs.normalize(name)
        except UserError:
            tag = None
        if tag is not None and store.index_lookup(tag) is None:
            tag = None                                  # an id prefix, not a tag
    report = remove(store, image, tag, force=force)
    return {"removed": tag or image.digest, **report.to_dict()}


def _digest(digest: str) -> str:
    hexpart = digest[7:]
    if not digest.startswith("sha256:") or len(hexpart) != 64 or \
            any(c not in "0123456789abcdef" for c in hexpart):
        raise UserError(f"invalid digest '{digest}'", hint="expected sha256:<64 hex digits>")
    return digest


@router.get("/blobs/{digest}")
def get_blob(request: Request, store: ImageStoreDep, digest: Digest) -> FileResponse:
    """A blob by digest (build workers on other machines fetch layers this way)."""
    if not store.has_blob(_digest(digest)):
        raise NotFound(f"blob {digest} not found")
    resp = FileResponse(store.blob_path(digest), media_type="application/octet-stream")
    resp.chunk_size = BLOB_CHUNK       # not 64 KiB: each chunk is a thread hop and a send
    return resp


@router.head("/blobs/{digest}")
def head_blob(request: Request, store: ImageStoreDep, digest: Digest) -> Response:
    found = store.has_blob(_digest(digest))
    # the headers a GET would have: the blob's type, or the JSON of the 404
    return Response(status_code=200 if found else 404,
                    media_type="application/octet-stream" if found else "application/json")


@router.put("/blobs/{digest}", status_code=201)
async def put_blob(request: Request, store: ImageStoreDep, digest: Digest) -> dict:
    """Store a blob a build worker made elsewhere; its content must hash to ``digest``."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    if store.has_blob(_digest(digest)):
        return {"digest": digest, "stored": False}
    writer = store.open_blob_writer("application/octet-stream", expected_digest=digest)
    # the body arrives in pieces of up to 256 KiB; a batch of them is hashed and written on
    # this upload's own thread while the next batch arrives (one batch in flight at most)
    thread, writing = ThreadPoolExecutor(1, thread_name_prefix="blob-put"), None
    try:
        batch, size = [], 0
        async for chunk in request.stream():
            batch.append(chunk)
            size += len(chunk)
            if size >= BLOB_BATCH:
                if writing is not None:
                    await asyncio.wrap_future(writing)
                writing = thread.submit(writer.write_chunks, batch)
                batch, size = [], 0
        if writing is not None:
            await asyncio.wrap_future(writing)
        await asyncio.wrap_future(thread.submit(writer.write_chunks, batch))
        if writer.digest != digest:     # a body that is not the blob is bad input, not a 5xx
            raise UserError(f"the body does not hash to {digest}",
                            hint="PUT /blobs/DIGEST takes the blob's exact bytes")
        await asyncio.wrap_future(thread.submit(writer.commit))
    except BaseException:
        thread.shutdown(wait=True)      # a batch or the commit at most: then nothing else
        writer.abort()                  # touches the temp file
        raise
    finally:
        thread.shutdown(wait=False)
    return {"digest": digest, "stored": True}


# -- registries -------------------------------------------------------------------------------
class RegistryAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: str = Field(min_length=1, max_length=512)
    password: str = Field(max_length=8192)


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reference: str = Field(min_length=1, max_length=1024,
                           description="alpine, ghcr.io/u/r:tag, host:5000/r@sha256:…")
    platform: str | None = Field(None, max_length=64, description="OS/ARCH[/VARIANT]; "
                                 "default the daemon's host")
    insecure_registries: list[str] = Field(default_factory=list, max_length=32,
                                           description="hosts that may be reached over HTTP")
    auth: RegistryAuth | None = None


@router.post("/images/pull", responses=NDJSON_200)
def pull_image(request: Request, store: ImageStoreDep, body: PullRequest) -> StreamingResponse:
    """Pull an image; streams NDJSON progress, then ``{"result": {name, digest}}``."""
    from minibox.registry.config import RegistryConfig
    from minibox.registry.credentials import Credentials
    from minibox.registry.pull import pull
    from minibox.registry.reference import parse
    from minibox.store.manifests import parse_platform

    ref = parse(body.reference)
    platform = parse_platform(body.platform)
    config = RegistryConfig.from_env(insecure=tuple(body.insecure_registries))
    creds = Credentials(body.auth.username, body.auth.password) if body.auth else None

    def task(progress) -> dict:
        done = pull(store, ref, config, platform, progress=progress, creds=creds)
        return {"name": done.name, "digest": done.digest, "reference": str(done.ref),
                "index_digest": done.index_digest}

    return stream_task(task)


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=1024, description="the local image")
    destination: str | None = Field(None, max_length=1024,
                                    description="where to push it (default: its name)")
    insecure_registries: list[str] = Field(default_factory=list, max_length=32)
    auth: RegistryAuth | None = None


@router.post("/images/push", responses=NDJSON_200)
def push_image(request: Request, store: ImageStoreDep, body: PushRequest) -> StreamingResponse:
    """Push an image; streams NDJSON progress, then ``{"result": {reference, digest}}``."""
    from minibox.registry.config import RegistryConfig
    from minibox.registry.credentials import Credentials
    from minibox.registry.push import push
    from minibox.registry.reference import parse

    dest = parse(body.destination or body.name)
    local = _find(store, body.name)
    config = RegistryConfig.from_env(insecure=tuple(body.insecure_registries))
    creds = Credentials(body.auth.username, body.auth.password) if body.auth else None
    return stream_task(lambda progress: push(store, local.digest, dest, config, creds=creds,
                                             progress=progress))


class TagRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    source: str = Field(min_length=1, max_length=1024, description="an image, by name or id")
    target: str = Field(min_length=1, max_length=1024, description="the new NAME[:TAG]")


@router.post("/images/tag", status_code=201)
def tag_image(request: Request, store: ImageStoreDep, body: TagRequest) -> dict:
    image = _find(store, body.source)
    name = store.tag(refs.normalize(body.target), image.descriptor)
    return {"name": name, "digest": image.digest}


# -- archives ---------------------------------------------------------------------------------
@router.get("/images/save")
def save_images(request: Request, store: ImageStoreDep,
                name: list[str] = Query(..., max_length=64,
                                        description="images to save, by name or id")
                ) -> StreamingResponse:
    """An archive of the images: an OCI image layout that also carries Docker's
    ``manifest.json`` (a plain tar, streamed; an error midway breaks the stream)."""
    from minibox.api.ndjson import stream_writer
    from minibox.archive.save import save
    images = [(img.name, img) for img in (_find(store, n) for n in name)]
    return stream_writer(lambda out: save(store, images, out), "application/x-tar")


@router.post("/images/load", responses=NDJSON_200)
async def load_images(request: Request, store: ImageStoreDep) -> StreamingResponse:
    """Load the images of an archive sent as the body (tar, tar.gz or tar.zst: what
    minibox, podman, skopeo or docker saved), read as it arrives.  Streams NDJSON
    progress, then ``{"result": {"images": [{names, digest}]}}``."""
    from minibox.api.ndjson import stream_upload_task
    from minibox.archive.load import load

    def task(chunks, progress) -> dict:
        loaded = load(store, chunks, progress)
        return {"images": [{"names": i.names, "digest": i.digest} for i in loaded]}

    return await stream_upload_task(request, task)
