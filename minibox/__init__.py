"""MiniBox: a small Linux container engine and build farm.

ARCHITECTURE.md (at the top of the repository) maps the packages and the processes."""

__version__ = "0.1.0"

#: the packages and top-level modules (imported by ``from minibox import *``)
__all__ = ["__version__", "accounts", "api", "archive", "atomic", "builder", "cli", "compose",
           "config", "daemon", "errors", "graph", "hostsfile", "kernel", "mbfile", "net",
           "overlay", "redisconn", "refs", "registry", "rmtree", "rootpath", "runtime",
           "sandbox", "space", "store", "wire", "workers"]
