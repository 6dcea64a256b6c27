"""The container runtime.

Its parts, as packages:

- ``service.Runtime(data_root)``: the runtime worker's face.  ``create(request) -> id``,
  ``start(id) -> state``, ``run(request) -> state`` (create + start; a failed start removes
  everything), ``kill(id, sig) -> bool``, ``remove(id, force)``, ``reconcile()`` (after a
  restart); one module per verb in ``verbs`` (create, start, kill, remove, reconcile, exits).
- ``state``: the container's records (``records``: state.json and the others, crash-safe),
  its status enum and allowed transitions (``status``), ids and names (``ids``).
- ``start``: the start path that carries out a ``wire.StartPlan``: ``spawn``, the compiled
  monitor (``minimon`` + its C sources) or the Python one (``zygote``, ``monitor``,
  ``init``), the filesystem steps (``rootfs``), the init layer (``initlayer``).
- ``io``: ``logs`` (framed, rotated log files), ``streams`` (logs, exec, attach as HTTP).
- ``limits``: ``cgroups`` (v1 and v2), ``stats``.
- ``security``: ``caps``, ``seccomp``.
- ``spec.from_request(dict) -> ContainerSpec``: validation of every user input (at the API
  edge; ContainerSpec, StartPlan and StartResult are in ``minibox.wire.runtime``).
- ``query``: ``list_containers``, ``inspect``, ``wait_exited(store, ids, timeout)``.
- ``exec.exec_spec`` / ``spawn_exec`` / ``run_capture`` (through ``nsexec``): commands
  inside a running container.
- ``volumes.VolumeStore``: named volumes.  ``network``: a container's network.
  ``restart``: restart policies.  ``health`` + ``health_scheduler``: healthchecks.
- ``images``, ``process``: the image and the process a container runs.
- ``remote.call(celery, verb, *args)``: the daemon's side of the ``minibox.runtime.*`` tasks.
"""

__all__ = ["exec", "health", "health_scheduler", "images", "io", "limits", "network", "nsexec",
           "process", "query", "remote", "restart", "security", "service", "spec", "start",
           "state", "verbs", "volumes"]
