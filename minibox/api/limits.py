"""Request body size limits, enforced while the body arrives (before a form's file part is
spooled to disk or a JSON body is held in memory): a body over its limit is a 413.

Limits: a build upload (POST /builds) may be as large as the context limit allows plus
room for the form; a JSON body 8 MiB.  Streams of bytes (a blob, an exec's stdin) have none.

Before the 413, what the client still sends is read and dropped (up to ``DRAIN_MAX`` bytes
or ``DRAIN_SECONDS``), as nginx's lingering close does: a connection closed with unread
data is reset by the kernel, and a client still sending would see the reset, not the 413.
"""

from __future__ import annotations

import asyncio
import json

JSON_MAX = 8 << 20
FORM_SLACK = 32 << 20       # the build form's other fields (the MiniBox file's text)
DRAIN_MAX = 256 << 20
DRAIN_SECONDS = 10.0


class BodyLimit:
    """Pure ASGI middleware; ``settings`` gives the context limit."""

    def __init__(self, app, settings):
        self.app = app
        self.settings = settings

    def limit_for(self, scope) -> int | None:
        if scope["method"] == "POST" and scope["path"].rstrip("/") == "/builds":
            return self.settings.context_limits.max_bytes + FORM_SLACK
        ctype = _header(scope, b"content-type")
        if ctype.split(b";")[0].strip().lower() == b"application/json":
            return JSON_MAX
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        if limit is None:
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            await _drain(receive)
            return await _too_large(send, limit)
        state = {"seen": 0, "over": False, "answered": False}

        async def limited_receive():
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}   # the app stops reading
            return message

        async def guarded_send(message):
            if not state["over"]:
                return await send(message)
            if not state["answered"]:                   # answer 413 instead of the app
                state["answered"] = True
                await _drain(receive)
                await _too_large(send, limit)

        await self.app(scope, limited_receive, guarded_send)
        if state["over"] and not state["answered"]:
            await _drain(receive)
            await _too_large(send, limit)


def _header(scope, name: bytes) -> bytes:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return b""


async def _drain(receive) -> None:
    """Read and drop the rest of a refused body (bounded: see the module's docstring)."""
    async def drop() -> None:
        left = DRAIN_MAX
        while left > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            left -= len(message.get("body", b""))
            if not message.get("more_body"):
                return

    try:
        await asyncio.wait_for(drop(), DRAIN_SECONDS)
    except asyncio.TimeoutError:
        pass


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"error": {
        "kind": "user", "message": f"the request body is larger than the daemon accepts "
                                   f"({limit >> 20} MiB)",
        "hint": "for a build, leave files out of the context with .miniboxignore or raise "
                "MINIBOX_CONTEXT_MAX_SIZE"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
