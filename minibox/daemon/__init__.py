"""``miniboxd``: ``main`` (the entry point, the API server), ``supervisor`` (the embedded
redis-server and workers), ``services`` (the live state the routers share)."""

__all__ = ["main", "services", "supervisor"]
