"""``minibox``: the command line (click).  ``main`` is the entry point (and the click-free
fast paths), ``commands`` the lazily loaded verbs; nothing heavy is imported at start.
Every verb reaches the daemon through ``client.Client`` (over ``transport``), which reads
where the daemon is from ``endpoint`` and translates every failure once."""

__all__ = ["archive", "build", "client", "commands", "completion", "containers",
           "daemon_errors", "db", "endpoint", "fastimages", "fastjson", "fastrun", "foreground",
           "images", "main", "output", "progress", "registry", "run_flags", "run_options",
           "session", "stats_view", "streams", "system", "tables", "transfer_view", "volumes",
           "compose", "networks", "transport"]
