"""The start path: what carries out a wire.StartPlan.

``spawn.start`` has the monitor started and waits for its report: the compiled one
(``minimon``: mbstart.c, mbinit.c, minimon.c, built by ``minimon.py``) or, without a
compiler, the Python one (``monitor`` + ``monitor_attach``, cloned from the ``zygote``) with
the Python init (``init``).  ``rootfs.steps`` decides the container's filesystem for both;
``initlayer`` makes the small layer with the mount points every container needs.
"""

__all__ = ["init", "initlayer", "minimon", "monitor", "monitor_attach", "rootfs", "spawn", "zygote"]
