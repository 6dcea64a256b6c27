"""Disk space: what is in use (``refs``), how much it takes (``usage``: system df), removing
what nothing uses (``prune``: system prune and rmi), and holding what running operations
use (``hold``)."""

__all__ = ["hold", "info", "prune", "refs", "usage"]
