"""Long operations as streams: ``stream_task`` (pull, push, load) sends NDJSON progress
events, then one final ``{"result": …}`` or ``{"error": {kind, message, hint}}`` line;
``stream_upload_task`` (load) is one whose task reads the request body as it arrives;
``stream_writer`` (save) sends the bytes a writer produces."""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Callable

from fastapi.responses import StreamingResponse

from minibox.errors import MiniBoxError

_END = object()


#: the route's 200 is a stream of JSON lines (progress, then a result or an error line)
NDJSON_200 = {200: {"description": "NDJSON: progress lines, then a result or an error line",
                    "content": {"application/x-ndjson": {}}}}


def stream_task(task: Callable[[Callable[[dict], None]], dict]) -> StreamingResponse:
    """Run ``task(progress)`` in a thread; stream what it reports and how it ended."""
    events: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            events.put({"result": task(events.put)})
        except MiniBoxError as e:
            events.put({"error": e.to_dict()})
        except Exception as e:                         # a bug: say so, keep the daemon up
            logging.getLogger("minibox.api").exception("streamed task failed")
            events.put({"error": {"kind": "internal", "message": f"internal error: {e!r}",
                                  "hint": "this is a bug in miniboxd; its log has the "
                                          "traceback"}})
        finally:
            events.put(_END)

    threading.Thread(target=run, name="api-task", daemon=True).start()

    def lines():
        while (event := events.get()) is not _END:
            yield json.dumps(event) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


_FEED_CHUNK = 1 << 20       # the body goes to the task a MiB at a time


class _BodyFeed:
    """A request body handed to a task's thread as it arrives.  ``next()`` (the task) gives
    the next bytes, ``b""`` at the end, and a UserError if the body was cut off; once the
    task is done with it (``close``), what the request side ``put``s is dropped, so an
    upload never waits for a task that stopped reading."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._closed = threading.Event()
        self._ended = False
        self.cut = False                  # the request side failed: no more will come

    def next(self) -> bytes:
        while not self._ended:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.cut:
                    from minibox.errors import UserError
                    raise UserError("the upload ended before the whole body arrived",
                                    hint="the client went away; send it again") from None
                continue
            self._ended = not item
            return item
        return b""

    def offer(self, item) -> bool:
        """Queue ``item`` if there is room now (no thread hop); False if there is not."""
        if self._closed.is_set():
            return True
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def put(self, item) -> None:
        """Queue ``item``, waiting for room (in a worker thread) unless the task stopped."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self._closed.set()
        while True:                                   # free a put() waiting for room
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


async def stream_upload_task(request, task: Callable[[Callable[[], bytes],
                                                      Callable[[dict], None]], dict]
                             ) -> StreamingResponse:
    """``stream_task`` of ``task(chunks, progress)``, where ``chunks()`` gives the request
    body as it arrives: the task starts at once and works while the body is on its way."""
    from starlette.concurrency import run_in_threadpool

    feed = _BodyFeed()

    def run(progress) -> dict:
        try:
            return task(feed.next, progress)
        finally:
            feed.close()

    response = stream_task(run)

    async def send(item) -> None:
        if not feed.offer(item):
            await run_in_threadpool(feed.put, item)

    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            parts.append(chunk)
            size += len(chunk)
            if size >= _FEED_CHUNK:
                await send(b"".join(parts))
                parts, size = [], 0
        if size:
            await send(b"".join(parts))
        await send(b"")
    except BaseException:
        feed.cut = True
        raise
    return response


class _QueueWriter:
    """A write-only file whose writes become chunks of a response."""

    def __init__(self, q: queue.Queue):
        self.q = q

    def write(self, data) -> int:
        self.q.put(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def stream_writer(write: Callable[[object], None], media_type: str) -> StreamingResponse:
    """Run ``write(out)`` in a thread and stream what it writes.  If it fails, the stream
    breaks off (the client sees an incomplete body, never a truncated success)."""
    chunks: queue.Queue = queue.Queue(maxsize=64)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            write(_QueueWriter(chunks))
        except BaseException as e:                     # reported by breaking the stream
            logging.getLogger("minibox.api").warning("streamed write failed: %s", e)
            failed.append(e)
        finally:
            chunks.put(_END)

    threading.Thread(target=run, name="api-writer", daemon=True).start()

    def body():
        while (chunk := chunks.get()) is not _END:
            yield chunk
        if failed:
            raise RuntimeError("the archive could not be written completely")

    return StreamingResponse(body(), media_type=media_type)
