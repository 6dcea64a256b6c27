"""The contract package: each message survives the trip through JSON unchanged, a malformed
one is refused by name, and both sides really use the same names (the workers' registered
Celery tasks, the queues they consume)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from minibox import wire
from minibox.wire import events as ev
from minibox.wire.build import BlockJob, BlockResult


def through_json(d: dict) -> dict:
    return json.loads(json.dumps(d))


LAYER = {"digest": "sha256:" + "a" * 64, "diff_id": "sha256:" + "b" * 64, "size": 10,
         "media_type": "application/vnd.oci.image.layer.v1.tar+zstd", "empty": False}


def test_a_block_job_round_trips_through_json():
    job = BlockJob(job="j1", block="app", key="k" * 64,
                   steps=[{"op": "run", "line": 3, "argv": ["sh", "-c", "true"]}],
                   lowers=[LAYER], context_dir="/ctx", copy_from={"builder": [LAYER]},
                   no_cache=True, network="none", timestamp=1_700_000_000,
                   data_root="/var/lib/minibox",
                   daemon_url="http://127.0.0.1:8080")
    assert BlockJob.from_wire(through_json(job.to_wire())) == job


def test_block_results_round_trip_and_keep_their_shape_on_the_wire():
    built = BlockResult.built(LAYER, 1.5)
    assert built.to_wire() == {"ok": True, "layer": LAYER, "cached": False, "duration": 1.5}
    cached = BlockResult.from_cache(LAYER)
    assert cached.to_wire() == {"ok": True, "layer": LAYER, "cached": True}
    failed = BlockResult.failed({"kind": "build", "message": "exit 1", "hint": None}, ["x"])
    assert failed.to_wire() == {"ok": False, "error": failed.error, "tail": ["x"]}
    for r in (built, cached, failed):
        assert BlockResult.from_wire(through_json(r.to_wire())) == r


def test_messages_are_frozen():
    job = BlockJob(job="j", block="b", key="k", steps=[], lowers=[])
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.key = "other"                            # type: ignore[misc]
    assert job.with_context("/elsewhere").context_dir == "/elsewhere"
    assert job.context_dir is None


def test_a_message_missing_a_field_is_refused_by_name():
    with pytest.raises(wire.ProtocolError, match="block job: missing key, lowers"):
        BlockJob.from_wire({"job": "j", "block": "b", "steps": []})
    with pytest.raises(wire.ProtocolError, match="block result: expected an object"):
        BlockResult.from_wire(["ok"])                # type: ignore[arg-type]


def test_unknown_fields_from_a_newer_sender_are_ignored():
    job = BlockJob.from_wire({"job": "j", "block": "b", "key": "k", "steps": [],
                              "lowers": [], "priority": 5})
    assert job == BlockJob(job="j", block="b", key="k", steps=[], lowers=[])


def test_is_remote_compares_real_paths(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "root")
    job = BlockJob(job="j", block="b", key="k", steps=[], lowers=[],
                   data_root=str(tmp_path / "link"))
    assert not job.is_remote(tmp_path / "root")
    assert job.is_remote(tmp_path / "other")
    assert not dataclasses.replace(job, data_root="").is_remote(tmp_path / "other")


def sample(cls: type[ev.Event]) -> ev.Event:
    """An instance of an event class with a value of the right type in every field."""
    values = {"str": "x", "int": 3, "float": 1.25, "bool": True, "dict": {"kind": "build"},
              "list[str]": ["a", "b"]}
    kwargs = {}
    for f in dataclasses.fields(cls):
        kind = f.type.split(" |")[0]
        kwargs[f.name] = values[kind]
    return cls(**kwargs)


@pytest.mark.parametrize("cls", list(ev.EVENT_TYPES.values()), ids=list(ev.EVENT_TYPES))
def test_every_build_event_round_trips_with_its_type(cls):
    event = sample(cls)
    data = through_json(event.to_wire())
    assert data["type"] == cls.TYPE
    data["time"] = 1.0                               # added by EventLog.emit
    assert ev.event_from_wire(data) == event


def test_event_types_are_unique_and_an_unknown_one_is_refused():
    classes = [c for c in vars(ev).values()
               if isinstance(c, type) and issubclass(c, ev.Event) and c is not ev.Event]
    assert sorted(c.TYPE for c in classes) == sorted(ev.EVENT_TYPES)
    with pytest.raises(wire.ProtocolError, match="unknown build event type 'nope'"):
        ev.event_from_wire({"type": "nope"})


def test_optional_event_fields_stay_off_the_wire():
    assert ev.BlockCached(block="a", key="k").to_wire() == \
        {"type": "block_cached", "block": "a", "key": "k"}
    step = ev.BlockStep.from_sandbox("a", {"type": "log", "line": 4, "text": "PKG: x"})
    assert step.to_wire() == {"type": "block_step", "block": "a", "line": 4, "text": "PKG: x"}


def test_the_workers_register_exactly_the_contracts_task_names():
    from minibox.workers.celery_app import make_celery
    from minibox.workers import build_tasks, runtime_tasks  # noqa: F401  (register them)
    from minibox.workers.celery_app import app

    names = {n for n in app.tasks if n.startswith("minibox.")}
    expected = {wire.BUILD_BLOCK, wire.BUILD_PING} | \
        {wire.runtime_task(v) for v in wire.RUNTIME_VERBS}
    assert names == expected
    # a runtime task is routed to the one runtime queue; a build task never by a route
    # (its queue is its platform's, named by each send: no worker reads a bare "build")
    routes = make_celery().conf.task_routes
    assert routes == {wire.runtime_task("*"): {"queue": wire.RUNTIME_QUEUE}}


def test_redis_keys_of_different_jobs_and_kinds_never_collide():
    keys = [f("job1") for f in (wire.job_record_key, wire.job_events_key,
                                wire.job_cancel_key, wire.job_tasks_key)]
    keys += [wire.block_lock_key("job1"), wire.BUILDS_INDEX, wire.job_record_key("job2"),
             wire.worker_key("job1"), wire.WORKERS_INDEX]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith("minibox:") for k in keys)


def test_a_worker_advertisement_round_trips_and_names_its_platform_queue():
    ad = wire.WorkerAd(name="build@b1", host="b1", platform="linux/arm/v7",
                       queue=wire.build_queue("linux/arm/v7"), concurrency=4, pid=42)
    assert ad.queue == "build.linux-arm-v7"
    assert wire.WorkerAd.decode(ad.encode()) == ad
    assert wire.WorkerAd.from_wire(through_json(ad.to_wire())) == ad
    with pytest.raises(wire.ProtocolError, match="worker advertisement: missing platform"):
        wire.WorkerAd.from_wire({k: v for k, v in ad.to_wire().items() if k != "platform"})
    assert wire.build_queue("linux/amd64") != wire.build_queue("linux/arm64")
