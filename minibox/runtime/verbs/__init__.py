"""The runtime worker's verbs, one module each (``runtime.service.Runtime`` is their face):
``create``, ``start`` (and restart_exited), ``kill`` (and mark_stopped), ``remove``,
``reconcile``, and ``exits`` (the exit of a container it started, persisted).
"""

__all__ = ["create", "exits", "kill", "reconcile", "remove", "start"]
