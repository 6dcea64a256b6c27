"""``miniboxd``: ``main`` (the entry point, the API server), ``supervisor`` (the embedded
redis-server and workers), ``procs`` (what a killed daemon left, for the next to adopt),
``services`` (the live state the routers share)."""

__all__ = ["credentials", "listen", "main", "procs", "services", "supervisor"]
