"""Daemon side of one build: plan and key every block up front (a key depends only on the
inputs, never on a build's outcome), look every key up at once (one MGET for the farm-wide
index), then run the graph as data flow: a hit is done at once, and a miss goes to the build
queue as soon as the blocks it depends on are done -- not when its whole wave is -- and
finally write the image.  An unchanged rebuild so never reaches a worker, and its events go
to the stream in one round trip.

Waiting blocks on the job's event stream (the workers append each block's result to it), so
a block's dependents are sent within milliseconds of its end.  Celery's result backend is
read only when the stream is quiet (or once a second): it is the fallback for a task that
failed outside the block (FAILURE) and for a worker that died (its Redis lock expired while
the task still says STARTED, which the block writes as it takes the lock), whose block is
sent again, at most MAX_ATTEMPTS times.  A block's SUCCESS is not stored there (its result
is on the stream).  The
cancel flag is read at the start, when the stream says a cancel was asked for
(``cancel_requested``, which ``BuildManager.cancel`` appends) and at that same pace.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from minibox import graph
from minibox.builder import cachekey, platforms
from minibox.builder.cache import BlockCache
from minibox.builder.events import EventLog
from minibox.builder.flow import Flow
from minibox.builder.image import image_config
from minibox.builder.plan import (BlockPlan, BuildState, check_layer_stacks, inherit,
                                  plan_block)
from minibox.errors import BuildFailed, Cancelled, MiniBoxError
from minibox.mbfile.model import Block, MiniBoxFile
from minibox.wire.build import BlockJob, BlockResult
from minibox.wire.events import (Base, BasePull, BlockCached, BlockQueued, BlockResultEvent,
                                 BlockRetry, CancelRequested, Event, Image)
from minibox.wire.keys import LOCK_TTL, block_lock_key, job_cancel_key, job_tasks_key
from minibox.wire.queues import BUILD_BLOCK

MAX_ATTEMPTS = 3
LOST_AFTER = 3 * LOCK_TTL
POLL_EVERY = 1.0        # seconds between reads of Celery's results while events flow


@dataclass
class BuildRequest:
    tag: str
    text: str
    filename: str
    context_dir: Path
    target: str | None = None
    no_cache: bool = False
    network: str = "build"      # the RUN steps' network: build, none or host (opt-in)
    owns_context: bool = False
    timestamp: int | None = None      # SOURCE_DATE_EPOCH: created times, layer mtimes clamped
    pull: str = "missing"          # the base: "missing", "always" or "never" pull it
    platform: str | None = None    # --platform: the workers' platform (default: the base's)


@dataclass
class Done:
    """A finished block: its key, its layer (None when empty) and the state it leaves."""

    key: str
    layer: dict | None
    state: BuildState
    cached: bool

    @classmethod
    def of(cls, key: str, layer: dict, state: BuildState, cached: bool) -> "Done":
        """An empty layer (a block whose steps changed nothing) stays out of the image,
        whether the block ran now or came from the cache: both give the same image."""
        return cls(key, None if layer.get("empty") else layer, state, cached)


@dataclass
class Keyed:
    """A block planned and keyed before anything runs."""

    block: Block
    wave: int
    plan: BlockPlan
    key: str
    components: dict


@dataclass
class Pending:
    block: Block
    key: str
    job: BlockJob
    task_id: str = ""
    attempts: int = 0
    started_without_lock: float = 0.0
    task_state: str = "PENDING"      # its Celery task's, as last polled
    state: BuildState = field(default_factory=BuildState)
    components: dict = field(default_factory=dict)


class Build:
    def __init__(self, services, job_id: str, req: BuildRequest, mb: MiniBoxFile):
        self.s, self.job, self.req, self.mb = services, job_id, req, mb
        self.store, self.redis, self.celery = services.store, services.redis, services.celery
        self.events = EventLog(self.redis, job_id)
        self.cache = BlockCache(self.store, services.settings.cache_dir, services.redis)
        self.last = cachekey.LastBuilds(services.settings.cache_dir)
        self.done: dict[str, Done] = {}
        self.stats = {"cached": 0, "built": 0}
        self._out: list[Event] = []
        self.keyed: dict[str, Keyed] = {}
        self.found: dict[str, dict] = {}

    # --- the whole build --------------------------------------------------------
    def run(self) -> dict:
        from minibox.space.hold import hold

        with hold(self.store.root) as held:          # a prune spares what this build uses
            return self._run(held)

    def _run(self, held) -> dict:
        from minibox.builder.base import resolve_base, resolvers_for

        t0 = time.monotonic()
        self.base = resolve_base(self.store, self.mb.base, self.req.context_dir, resolvers_for(
            self.req.pull, self._pull_progress, self.req.platform))
        self.held = held
        held.add_layers(self.base.layers)
        self.route = platforms.Route(self.redis, platforms.build_platform(
            self.req.platform, self.base.platform, self.mb.base))
        self.events.emit(Base(ref=self.mb.base, digest=self.base.digest,
                              layers=len(self.base.layers)))
        self.base_state = BuildState.from_image_config(self.base.config)
        check_layer_stacks(self.mb, len(self.base.layers), self.req.target)
        waves = graph.waves(self.mb, self.req.target)
        try:
            self.keyed = self._key_all(waves)
            self.found = self._look_up()
            self._run_graph(waves)
        finally:
            self._flush()
            self.last.save()
        desc = self._write_image()
        return {"digest": desc.digest, "duration": time.monotonic() - t0, **self.stats}

    def _emit(self, event: Event) -> None:
        """Queue an event for the stream; ``_flush`` sends the queue in one round trip (before
        anything is sent to a worker or waited for, so the order on the stream is kept)."""
        self._out.append(event)

    def _flush(self, sending: list[Pending] = ()) -> None:
        """The queued events, and the task ids of the blocks about to be sent (into the
        job's task set, which a cancel revokes), in one round trip."""
        out, self._out = self._out, []
        ids = [p.task_id for p in sending]
        self.events.emit_many(out, then=None if not ids else (
            lambda pipe: _remember_tasks(pipe, self.job, ids)))

    def _pull_progress(self, event: dict) -> None:
        if event.get("status") != "Downloading":
            self.events.emit(BasePull(ref=self.mb.base, **{
                k: v for k, v in event.items() if k in BasePull.__dataclass_fields__}))

    def _check_cancel(self) -> None:
        if self.redis.exists(job_cancel_key(self.job)):
            raise Cancelled("build cancelled")

    # --- planning and keying, before anything runs ---------------------------------
    def _key_all(self, waves: list[list[Block]]) -> dict[str, Keyed]:
        """Plan and key every block (a bad COPY source fails the build before any block
        runs); a block's parents come first, so their states and keys are known."""
        keyed: dict[str, Keyed] = {}
        for i, wave in enumerate(waves, 1):
            for block in wave:
                parents = [keyed[n].plan.state for n in block.needs]
                inherited = inherit(self.base_state, parents)
                plan = plan_block(block, inherited)
                inputs = cachekey.KeyInputs(
                    base=self.base.digest,
                    parents={n: keyed[n].key for n in block.deps},
                    inherited=inherited.to_dict(), instructions=plan.key_material,
                    copy_hashes=self._copy_hashes(plan), lines=plan.lines,
                    timestamp=self.req.timestamp, platform=self.route.platform)
                keyed[block.name] = Keyed(block, i, plan, inputs.key(), inputs.components())
        return keyed

    def _look_up(self) -> dict[str, dict]:
        """The cache entries of every block that makes a layer, at once; their layers are
        held against a prune from now on."""
        if self.req.no_cache:
            return {}
        found = self.cache.get_many([k.key for k in self.keyed.values() if k.plan.touches_fs])
        self.held.add_layers([e["layer"] for e in found.values()])
        return found

    def _prepare(self, block: Block) -> Pending | None:
        """A block whose dependencies are done: finished now (metadata only, or a hit), or
        its job for a worker."""
        k = self.keyed[block.name]
        plan, key, components = k.plan, k.key, k.components
        if not plan.touches_fs:
            self._finish(block, Done(key, None, plan.state, True), components, note="metadata")
            return None
        entry = self.found.get(key)
        if entry is not None:
            self._finish(block, Done.of(key, entry["layer"], plan.state, True), components)
            return None
        reason = "--no-cache" if self.req.no_cache else cachekey.explain_miss(
            self.last.get(self.req.tag, block.name), components, plan.texts)
        self._emit(BlockQueued(block=block.name, key=key, reason=reason))
        job = BlockJob(job=self.job, block=block.name, key=key, steps=plan.steps,
                       lowers=self._lowers(block), context_dir=str(self.req.context_dir),
                       copy_from={n: self._merged(n) for n in plan.copy_from},
                       no_cache=self.req.no_cache, network=self.req.network,
                       timestamp=self.req.timestamp,
                       data_root=str(self.s.settings.data_root),
                       daemon_url=self.s.settings.daemon_url())
        return Pending(block, key, job, state=plan.state, components=components)

    def _copy_hashes(self, plan) -> dict[str, str]:
        from minibox.builder.context import hash_sources, resolve_sources

        out = {}
        for index, line, sources in plan.local_copies:
            srcs = resolve_sources(self.req.context_dir, sources, line, self.req.filename)
            out[str(index)] = hash_sources(srcs)
        return out

    def _finish(self, block: Block, done: Done, components: dict, note: str = "") -> None:
        self.done[block.name] = done
        self.stats["cached" if done.cached else "built"] += 1
        self.last.put(self.req.tag, block.name, components)
        if done.cached:
            self._emit(BlockCached(block=block.name, key=done.key, note=note or None))
        for event in self.flow.finished(block, done.cached):
            self._emit(event)

    # --- layer stacks -----------------------------------------------------------
    def _stack(self, names: list[str]) -> list[dict]:
        """Base layers, then the named blocks' layers; returned TOP-MOST FIRST."""
        layers = [layer.to_dict() for layer in self.base.layers]
        layers += [self.done[n].layer for n in names if self.done[n].layer]
        return list(reversed(layers))

    def _lowers(self, block: Block) -> list[dict]:
        return self._stack(graph.need_closure(self.mb, block.name))

    def _merged(self, name: str) -> list[dict]:
        return self._stack(graph.need_closure(self.mb, name) + [name])

    # --- sending blocks and waiting for them -------------------------------------
    def _run_graph(self, waves: list[list[Block]]) -> None:
        """Start every ready block, wait for news, complete what finished, until all is
        done; on a failure the blocks still running are stopped."""
        self.flow = Flow(waves)
        running: dict[str, Pending] = {}
        cursor = self.events.last_id()       # a cancel after this is seen on the stream
        polled = time.monotonic()
        try:
            self._check_cancel()
            while self.flow.ready or running:
                for p in self._start_ready():
                    running[p.block.name] = p
                if not running:
                    continue
                cursor, results, quiet, cancel = self._wait_for_results(cursor)
                poll = quiet or time.monotonic() - polled >= POLL_EVERY
                polled = time.monotonic() if poll else polled
                if cancel or poll:
                    self._check_cancel()
                polled_now = self._poll([p for n, p in running.items()
                                         if n not in results]) if poll else {}
                for name, p in list(running.items()):
                    outcome = results.get(name) or polled_now.get(name)
                    if outcome is not None:
                        del running[name]
                        self._complete(p, outcome)
                self.route.watch(queued=any(p.task_state != "STARTED"
                                            for p in running.values()))
        except MiniBoxError:
            self._flush()
            self._stop_siblings(running.values())
            raise

    def _start_ready(self) -> list[Pending]:
        """Finish or send every ready block (a hit makes its dependents ready at once)."""
        misses = []
        while True:
            block, wave_events = self.flow.next()
            if block is None:
                break
            for event in wave_events:
                self._emit(event)
            pend = self._prepare(block)
            if pend is not None:
                misses.append(pend)
        for p in misses:
            _new_attempt(p)
        self._flush(misses)
        if misses:
            self.route.require(self._check_cancel)
        for p in misses:
            self._send(p)
        return misses

    def _send(self, p: Pending) -> None:
        # argsrepr: what Flower and the workers' logs show for the task (not the payload)
        self.celery.send_task(BUILD_BLOCK, args=[p.job.to_wire()], queue=self.route.queue,
                              task_id=p.task_id,
                              argsrepr=f"build={self.job} block={p.block.name}")

    def _wait_for_results(self, cursor: str):
        """Wait (up to 250 ms) for news on the job's stream: the new cursor, the blocks'
        results in it, whether nothing came (quiet) and whether a cancel was asked for."""
        entries = self.events.read(cursor, block_ms=250, count=500)
        results = {ev["block"]: BlockResult.from_wire(ev["result"]) for _, ev in entries
                   if ev.get("type") == BlockResultEvent.TYPE}
        cancel = any(ev.get("type") == CancelRequested.TYPE for _, ev in entries)
        return (entries[-1][0] if entries else cursor), results, not entries, cancel

    def _poll(self, pending: list[Pending]) -> dict[str, BlockResult | None]:
        """The Celery states of the blocks' tasks and whether their keys' locks are held,
        in one round trip; the outcome of each block that has one, by name."""
        if not pending:
            return {}
        backend = self.celery.backend
        pipe = self.redis.pipeline(transaction=False)
        for p in pending:
            pipe.get(backend.get_key_for_task(p.task_id))
            pipe.exists(block_lock_key(p.key))
        replies = pipe.execute()
        out = {}
        for i, p in enumerate(pending):
            raw, locked = replies[2 * i], bool(replies[2 * i + 1])
            state = backend.decode_result(raw)["status"] if raw else "PENDING"
            out[p.block.name] = self._judge(p, state, locked)
        return out

    def _judge(self, p: Pending, state: str, locked: bool) -> BlockResult | None:
        p.task_state = state
        if state == "SUCCESS":          # not stored by today's workers (see build_tasks)
            return BlockResult.from_wire(self.celery.AsyncResult(p.task_id).result)
        if state in ("FAILURE", "REVOKED"):
            res = self.celery.AsyncResult(p.task_id).result
            return BlockResult.failed({"kind": "internal",
                                       "message": f"build worker error: {res!r}"})
        if state == "STARTED" and not locked:
            now = time.monotonic()
            p.started_without_lock = p.started_without_lock or now
            if now - p.started_without_lock > LOST_AFTER:
                return self._lost(p)
        else:
            p.started_without_lock = 0.0
        return None

    def _lost(self, p: Pending) -> BlockResult | None:
        if p.attempts >= MAX_ATTEMPTS:
            return BlockResult.failed({"kind": "build", "message":
                                       f"the build worker running block '{p.block.name}' "
                                       f"was lost {p.attempts} times"})
        self._emit(BlockRetry(block=p.block.name, attempt=p.attempts + 1,
                              reason="build worker lost"))
        _new_attempt(p)
        self._flush([p])
        self._send(p)
        return None

    def _complete(self, p: Pending, outcome: BlockResult) -> None:
        if not outcome.ok:
            err = MiniBoxError.from_dict(outcome.error or {})
            if isinstance(err, Cancelled):
                raise err
            tail = outcome.tail or []
            hint = ("last output:\n" + "\n".join("    " + t for t in tail)) if tail else \
                err.hint
            raise BuildFailed(f"{self.req.filename}: block '{p.block.name}': {err.message}",
                              hint=hint)
        layer = outcome.layer
        cached = bool(outcome.cached)
        if self.cache.get(p.key) is None and self.store.has_blob(layer["digest"]):
            self.cache.put(p.key, p.block.name, layer)   # built by a worker elsewhere
        done = Done.of(p.key, layer, p.state, cached)
        self._finish(p.block, done, p.components)

    def _stop_siblings(self, pending) -> None:
        """Fail fast: siblings still queued are revoked, running ones see the flag."""
        self.redis.set(job_cancel_key(self.job), "failed", ex=86400)
        for p in pending:
            if p.task_id:
                self.celery.control.revoke(p.task_id)

    # --- the image ---------------------------------------------------------------
    def _write_image(self):
        from minibox.store.layertar import LayerInfo

        final = graph.final_blocks(self.mb, self.req.target)
        target = final[-1] if final else None
        state = self.done[target.name].state if target else self.base_state
        layers = list(self.base.layers)
        layers += [LayerInfo.from_dict(self.done[b.name].layer) for b in final
                   if self.done[b.name].layer]
        config = image_config(self.base.config, state, self.mb)
        created = None if self.req.timestamp is None else \
            datetime.fromtimestamp(self.req.timestamp, timezone.utc)
        desc = self._unchanged_image(config, layers, created) or \
            self.store.write_image(self.req.tag, config, layers, created=created,
                                   platform=self.route.platform)
        self.events.emit(Image(tag=self.req.tag, digest=desc.digest, layers=len(layers)))
        return desc

    def _unchanged_image(self, config: dict, layers: list, created: datetime | None):
        """An image already in the store with exactly these layers and config (and creation
        time, when one is given): the tag's current one, or, when no block ran (every one a
        hit), one under another name, which the tag then names too (as `docker build -t b`
        of a fully cached `a` gives a's image).  An unchanged rebuild writes nothing and
        keeps the image's digest."""
        from minibox.errors import NotFound
        from minibox.store.oci import rfc3339

        names = [self.req.tag]
        if all(d.cached for d in self.done.values()):
            names += sorted({n for n, _ in self.store.index_entries() if n and n != self.req.tag})
        diff_ids = [layer.diff_id for layer in layers]
        for name in names:
            try:
                image = self.store.resolve(name)
            except NotFound:
                continue
            if image.diff_ids != diff_ids or image.platform != self.route.platform or \
                    (image.config.get("config") or {}) != config:
                continue
            if created is not None and image.config.get("created") != rfc3339(created):
                continue
            if name != self.req.tag:
                self.store.tag(self.req.tag, image.descriptor)
            return image.descriptor
        return None


def _new_attempt(p: Pending) -> None:
    """A new task for ``p``'s block: its id is known (and remembered) before it is sent."""
    p.attempts += 1
    p.started_without_lock = 0.0
    p.task_state = "PENDING"
    p.task_id = str(uuid.uuid4())


def _remember_tasks(pipe, job_id: str, task_ids: list[str]) -> None:
    key = job_tasks_key(job_id)
    pipe.sadd(key, *task_ids)
    pipe.expire(key, 86400)
