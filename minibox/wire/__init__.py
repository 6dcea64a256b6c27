"""The contract between MiniBox's processes: what crosses a process boundary, defined once.

Both sides import from here, and only from here: the daemon (builder.scheduler, builder.jobs,
runtime.remote, the API) and the workers (workers.*, builder.executor, builder.remote).

- ``queues``: Celery queue and task names (BUILD_QUEUE, build_queue(platform), RUNTIME_QUEUE,
  BUILD_BLOCK, runtime_task(verb), TASK_ROUTES).
- ``keys``: Redis key names (job record, events stream, cancel flag, task set, hosts, block
  lock, the farm's block cache index) and the block lock's lease (LOCK_TTL).
- ``workers``: WorkerAd, a build worker's advertisement (platform, capacity, host), kept
  alive in Redis under ``keys.worker_key`` by its heartbeat.
- ``build``: BlockJob (daemon -> build worker) and BlockResult (worker -> daemon).
- ``events``: the build events of a job's stream, one frozen dataclass per type.
- ``codec``: to_wire / from_wire for these dataclasses (plain JSON-able dicts), ProtocolError.
- ``api``: the HTTP API's request models (pydantic, validated at the API edge; imported by
  the daemon's routers only, so not re-exported here).

- ``runtime``: ContainerSpec (the validated run/create request, daemon -> runtime worker),
  StartResult (its answer), StartPlan + ProcessSpec (runtime worker -> monitor and init;
  ``StartPlan.encode`` for the compiled start).

The worker messages are frozen dataclasses with ``to_wire()`` (a JSON-able dict, what Celery and Redis
carry) and ``from_wire(dict)``; optional fields that are None stay off the wire, unknown keys
are ignored (a newer sender may add fields), a missing required key is a ProtocolError.
They import nothing else of MiniBox.
"""

from minibox.wire.build import BlockJob, BlockResult
from minibox.wire.codec import ProtocolError
from minibox.wire.events import EVENT_TYPES, TERMINAL_EVENTS, Event, event_from_wire
from minibox.wire.keys import (BLOCK_CACHE_PATTERN, BUILDS_INDEX, DAEMON_RECORD, LOCK_TTL,
                               WORKER_TTL, WORKERS_INDEX, block_cache_key, block_lock_key,
                               job_cancel_key, job_events_key, job_hosts_key, job_record_key,
                               job_tasks_key, worker_key)
from minibox.wire.runtime import ContainerSpec, ProcessSpec, StartPlan, StartResult
from minibox.wire.queues import (BUILD_BLOCK, BUILD_PING, BUILD_QUEUE, RUNTIME_QUEUE,
                                 RUNTIME_VERBS, TASK_ROUTES, build_queue, runtime_task)
from minibox.wire.workers import WorkerAd

__all__ = [
    "BLOCK_CACHE_PATTERN", "BUILDS_INDEX", "BUILD_BLOCK", "BUILD_PING", "BUILD_QUEUE",
    "BlockJob", "BlockResult", "ContainerSpec", "DAEMON_RECORD", "EVENT_TYPES", "Event",
    "LOCK_TTL", "ProcessSpec", "ProtocolError", "RUNTIME_QUEUE", "RUNTIME_VERBS", "StartPlan",
    "StartResult", "TASK_ROUTES", "TERMINAL_EVENTS", "WORKERS_INDEX", "WORKER_TTL", "WorkerAd",
    "block_cache_key", "block_lock_key", "build_queue", "event_from_wire", "job_cancel_key",
    "job_events_key", "job_hosts_key", "job_record_key", "job_tasks_key", "runtime_task",
    "worker_key",
]
