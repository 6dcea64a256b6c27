"""Building images from MiniBox files.

Daemon side: ``jobs.BuildManager`` (submit, follow, cancel) runs a ``scheduler.Build`` per
job: ``plan`` turns each block into steps and the state it leaves, ``cachekey`` keys it,
``cache`` finds it, ``flow`` says which blocks may start (a block as soon as its dependencies
are done), misses go to the build queue of the build's platform (``minibox.wire.BlockJob``;
``platforms``: the workers' advertisements and the route), ``image`` writes the final
config.  Worker side: ``executor.execute_block`` (the sandbox, the commit), ``blocklock``
(the key's lock, and the block's first round trip), ``remote`` (a worker on another data
root).  Both: ``events`` (the job's stream),
``context``, ``contextfile`` and ``ignore`` (the build context), ``base`` (BASE images).
"""

__all__ = ["base", "blocklock", "cache", "cachekey", "context", "contextfile", "events",
           "executor", "flow", "ignore", "image", "jobs", "plan", "platforms", "remote", "scheduler"]
