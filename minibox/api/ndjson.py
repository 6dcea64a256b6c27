"""Long operations (pull, push) as an NDJSON stream: progress events, then one final
``{"result": …}`` or ``{"error": {kind, message, hint}}`` line."""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Callable

from fastapi.responses import StreamingResponse

from minibox.errors import MiniBoxError

_END = object()


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
