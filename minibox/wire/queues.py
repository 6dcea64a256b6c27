"""Celery queue and task names: what the daemon sends and the workers register.

Both sides import these; a task renamed on one side only would be a message nobody takes.
"""

from __future__ import annotations

BUILD_QUEUE = "build"        # prefork build workers, any machine: blocks (safe to redo);
                             # a block goes to its platform's queue, build_queue(platform)
RUNTIME_QUEUE = "runtime"    # the ONE runtime worker of a machine: containers (acked on receipt)

BUILD_TASK_PREFIX = "minibox.builder."
RUNTIME_TASK_PREFIX = "minibox.runtime."

BUILD_BLOCK = BUILD_TASK_PREFIX + "block"       # (BlockJob wire dict) -> BlockResult wire dict
BUILD_PING = BUILD_TASK_PREFIX + "ping"

#: the runtime worker's verbs; the daemon calls them with runtime.remote.call(celery, verb, ...)
RUNTIME_VERBS = ("run", "create", "start", "kill", "remove", "reconcile", "ping")


def build_queue(platform: str) -> str:
    """The build queue of a platform ("linux/arm/v7" -> "build.linux-arm-v7"): a worker
    consumes only its own platform's, so a block never runs on a worker of another."""
    return f"{BUILD_QUEUE}.{platform.strip().lower().replace('/', '-')}"


def runtime_task(verb: str) -> str:
    """The task name of a runtime verb ("start" -> "minibox.runtime.start")."""
    return RUNTIME_TASK_PREFIX + verb


#: Celery's task_routes: a runtime task to the runtime queue.  A build task has no route:
#: its queue is its platform's, build_queue(platform), named by every send (a route to the
#: bare BUILD_QUEUE sent blocks where no worker reads; tests/farm/test_task_queues.py)
TASK_ROUTES = {
    RUNTIME_TASK_PREFIX + "*": {"queue": RUNTIME_QUEUE},
}
