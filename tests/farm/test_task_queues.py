"""What the daemon sends over Celery, watched on the farm's real Redis (MONITOR) while it
builds and runs: every task it puts on a queue is on a queue some worker reads (Celery's
own inspect says which queues and tasks each worker has), and the only results it
subscribes to are the ones it waits for (the runtime worker's: a block's result comes on
its job's event stream, its state is read with a plain GET)."""

from __future__ import annotations

import re
import time

import redis

from minibox.config import Settings
from minibox.wire.queues import BUILD_BLOCK, RUNTIME_TASK_PREFIX
from minibox.workers.celery_app import make_celery
from tests.farmkit import RedisMonitor, write_ctx

_TASK = re.compile(r'"task": "([^"]+)"')
_ID = re.compile(r'"id": "([0-9a-f-]{36})"')


def _sent(commands: list[str]) -> list[tuple[str, str, str]]:
    """(queue, task name, task id) of every task message pushed onto a queue."""
    out = []
    for c in commands:
        if c.startswith("LPUSH ") and (task := _TASK.search(c)) and (tid := _ID.search(c)):
            out.append((c.split(" ", 2)[1], task.group(1), tid.group(1)))
    return out


def _workers(farm) -> dict[str, tuple[set[str], set[str]]]:
    """Each worker of the farm: (the queues it reads, the tasks it has), as it says."""
    control = make_celery(Settings.from_env(farm.env)).control
    end = time.monotonic() + 120
    while time.monotonic() < end:
        inspect = control.inspect(timeout=5)
        queues, tasks = inspect.active_queues() or {}, inspect.registered() or {}
        names = set(queues) & set(tasks)
        if any(n.startswith("build") for n in names) and any(n.startswith("runtime")
                                                                for n in names):
            return {n: ({q["name"] for q in queues[n]}, set(tasks[n])) for n in names}
    raise AssertionError("the farm's build and runtime workers did not answer inspect")


def test_every_task_the_daemon_sends_is_read_and_only_awaited_results_subscribed(farm,
                                                                                  ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\n" + "".join(
        f"BLOCK b{i}\n    RUN echo {i}-{time.time_ns()} > /b{i}\n" for i in range(3))})
    mon = RedisMonitor(redis.Redis(unix_socket_path=str(farm.root / "run" /
                                                         "redis.sock")))
    try:
        farm.build(ctx, "task-queues", "--network", "none")
        r = farm.cli("run", "--rm", "--network", "none", "task-queues", "cat", "/b2")
        assert r.returncode == 0 and r.stdout.startswith("2-"), r.stdout + r.stderr
        time.sleep(0.5)                 # the last commands reach the monitor
    finally:
        mon.close()
    sent = _sent(mon.commands)
    blocks = {tid for _, task, tid in sent if task == BUILD_BLOCK}
    runtime = {tid for _, task, tid in sent if task.startswith(RUNTIME_TASK_PREFIX)}
    assert len(blocks) >= 3 and runtime, sent
    workers = _workers(farm)
    for queue, task, _ in sent:
        assert any(queue in qs and task in ts for qs, ts in workers.values()), \
            f"{task} was sent to queue {queue!r}, which no worker with that task reads: " \
            f"{workers}"
    subscribed = {c.split("celery-task-meta-", 1)[1] for c in mon.commands
                  if c.startswith("SUBSCRIBE ") and "celery-task-meta-" in c}
    assert not subscribed & blocks, "the daemon subscribed to blocks' results"
    assert runtime <= subscribed, "a runtime call waits for its answer on its channel"
