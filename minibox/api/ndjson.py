"""Long operations as streams: ``stream_task`` (pull, push, load) sends NDJSON progress
events, then one final ``{"result": …}`` or ``{"error": {kind, message, hint}}`` line;
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
