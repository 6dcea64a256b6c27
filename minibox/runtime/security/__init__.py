"""What a container may do: ``caps`` (its capability set) and ``seccomp`` (the filter,
compiled once, loaded raw).  Masked and read-only paths are rootfs steps
(runtime.start.rootfs).
"""

__all__ = ["caps", "seccomp"]
