"""Doing the blobs of one image at once (a pull's downloads, a load's layer checks): their hashing and writing
release the GIL, so threads use every core."""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Sequence

WORKERS = 8              # an image's layers all at once: with fewer, the last ones start late


def in_parallel(fn: Callable, items: Sequence[tuple], name: str,
                on_failure: Callable[[], None] | None = None) -> None:
    """``fn(*item)`` for every item on up to ``WORKERS`` threads.  The first failure
    cancels what has not started, calls ``on_failure`` (to stop what runs), waits for the
    rest and is raised."""
    if not items:
        return
    if len(items) == 1:
        fn(*items[0])
        return
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(items)),
                            thread_name_prefix=name) as pool:
        futures = [pool.submit(fn, *item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            if on_failure is not None:
                on_failure()
            for f in futures:
                f.cancel()
            wait(futures)
            raise failed[0].exception()
