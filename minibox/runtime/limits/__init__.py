"""Resource limits: ``cgroups`` (v1 and v2, made per container under the settings'
cgroup parent) and ``stats`` (CPU, memory, pids, IO, network, read from them).
"""

__all__ = ["cgroups", "stats"]
