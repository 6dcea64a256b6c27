"""The container runtime.

Public API (the runtime worker calls ``service``; the daemon reads with ``query``,
``streams``, ``stats`` and runs exec through ``exec``):

- ``service.Runtime(data_root)``: ``create(request) -> id``, ``start(id) -> state``,
  ``run(request) -> state`` (create + start; a failed start removes everything),
  ``kill(id, sig) -> bool``, ``remove(id, force)``, ``reconcile()`` (after a restart); one
  module per verb (``create``, ``start``, ``kill``, ``remove``, ``reconcile``, ``exits``),
  the status enum and its transitions in ``status``.
- ``spec.from_request(dict) -> ContainerSpec``: validation of every user input (at the API
  edge; the frozen ContainerSpec, StartPlan and StartResult are in ``minibox.wire.runtime``).
- ``query``: ``list_containers``, ``inspect``, ``wait_exited(store, ids, timeout)``.
- ``streams``: ``log_stream`` (plain or Docker-multiplexed, follow until exit + exit frame),
  ``exec_stream``, ``pty_stream``.
- ``exec.exec_spec`` / ``spawn_exec`` / ``run_capture``: commands inside a running container.
- ``stats.Sampler().sample(state)``: CPU % from the previous sample, memory, pids, IO, net.
- ``volumes.VolumeStore``: named volumes.
- ``remote.call(celery, verb, *args)``: the daemon's side of the ``minibox.runtime.*`` tasks.

Inside: ``cgroups`` (v1 and v2), ``seccomp`` (filter compiled once, loaded raw), ``caps``,
``rootfs`` + ``init`` (the container's first process: namespaces, overlay, pivot_root,
/proc /dev /sys, masks, privileges, exec of tini), ``monitor`` + ``minimon.c`` (the
per-container monitor), ``logs`` (framed, rotated log files), ``state`` (crash-safe records),
``health`` + ``health_scheduler``, ``ids``, ``images``, ``process``.
"""

__all__ = ["caps", "cgroups", "create", "exec", "exits", "health", "health_scheduler", "ids",
           "images", "init", "initlayer", "kill", "logs", "minimon", "monitor", "monitor_attach",
           "network", "nsexec", "process", "query", "reconcile", "remote", "remove", "restart",
           "rootfs", "seccomp", "service", "spawn", "spec", "start", "state", "stats", "status",
           "streams", "volumes", "zygote"]
