"""The daemon's side of the runtime worker: call a runtime task and wait for its answer.

Waits with a short poll interval (Celery's default 0.5 s would dominate a container start)
and turns ``{"error": ...}`` back into the MiniBoxError the worker raised.
"""

from __future__ import annotations

import uuid

from minibox.errors import DaemonUnavailable, MiniBoxError
from minibox.wire.queues import RUNTIME_QUEUE, runtime_task


class RuntimeError_(MiniBoxError):
    """A runtime error that carries the exit code `run` should end with (127, 126)."""

    def __init__(self, data: dict, code: int | None):
        base = MiniBoxError.from_dict(data)
        super().__init__(base.message, hint=base.hint)
        self.kind, self.http_status = base.kind, base.http_status
        self.exit_code = code if code is not None else base.exit_code
        self.code = code

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.code is not None:
            d["exit_code"] = self.code
        return d


def call(celery, task: str, *args, timeout: float = 120.0):
    try:
        # declare=[]: the queue is the runtime worker's (it declares it); sent to it by name
        # (anonymous direct exchange), so re-binding a copy of it on every call is waste
        task_id = str(uuid.uuid4())
        watch = getattr(celery.backend, "watch", None)     # the daemon's backend: subscribe
        if watch is not None:                               # to the answer before sending
            watch(task_id)
        res = celery.send_task(runtime_task(task), args=list(args), queue=RUNTIME_QUEUE,
                               declare=[], task_id=task_id)
        out = res.get(timeout=timeout, interval=0.001, propagate=True)
    except MiniBoxError:
        raise
    except Exception as e:  # noqa: BLE001 - broker down, worker gone, timeout
        raise DaemonUnavailable(f"the runtime worker did not answer: {type(e).__name__}: {e}",
                                hint="is `minibox-worker runtime` running?") from None
    if isinstance(out, dict) and "error" in out:
        raise RuntimeError_(out["error"], out.get("exit_code"))
    return out.get("ok") if isinstance(out, dict) else out
