"""Translate MiniBoxError into HTTP responses, once, for every router."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from minibox.errors import MiniBoxError


def error_body(err: MiniBoxError) -> dict:
    return {"error": err.to_dict()}


def install(app: FastAPI) -> None:
    @app.exception_handler(MiniBoxError)
    async def _minibox_error(_: Request, err: MiniBoxError) -> JSONResponse:
        return JSONResponse(error_body(err), status_code=err.http_status)

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> JSONResponse:
        logging.getLogger("minibox.api").exception("%s %s failed", request.method,
                                                   request.url.path)
        body = {"error": {"kind": "internal", "message": f"internal error: {err!r}",
                          "hint": "this is a bug in miniboxd; its log has the traceback"}}
        return JSONResponse(body, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
        body = {"error": {"kind": "user", "message": "invalid request: " + "; ".join(parts),
                          "hint": None}}
        return JSONResponse(body, status_code=400)
