"""MiniBox: a small Linux container engine and build farm.

ARCHITECTURE.md (at the top of the repository) maps the packages and the processes."""

__version__ = "0.1.0"

#: the packages and top-level modules (imported by ``from minibox import *``)
__all__ = ["__version__", "api", "archive", "builder", "cli", "config", "daemon", "errors",
           "graph", "kernel", "mbfile", "overlay", "redisconn", "refs", "registry", "rmtree",
           "runtime", "sandbox", "space", "store", "wire", "workers", "compose", "net"]
