"""Translate MiniBoxError into HTTP responses, once, for every router."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from minibox.builder.contextfile import printable
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

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        # the framework's own refusals (no such route, method not allowed, a body that
        # does not parse), in the same shape as ours
        kind = "not_found" if err.status_code == 404 else \
            "user" if err.status_code < 500 else "internal"
        body = {"error": {"kind": kind, "message": str(err.detail), "hint": None}}
        return JSONResponse(body, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = validation_problems(err.errors())
        body = {"error": {"kind": "user", "message": "invalid request: " + "; ".join(problems),
                          "hint": "see /docs for what this route takes"}}
        return JSONResponse(body, status_code=422)


# pydantic names the member of a union (``int | str``) it tried in an error's location
_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "bytes"}


def validation_problems(errors) -> list[str]:
    """One line per invalid field, naming it (``query parameter 'limit': ...``, ``field
    'health.retries': ...``); never the value sent."""
    seen: dict[str, str] = {}
    for e in errors:
        loc = [x for x in e.get("loc", ()) if not _is_union_tag(x)]
        where = loc[0] if loc and loc[0] in ("body", "query", "path", "header", "cookie") \
            else "body"
        rest = loc[1:] if loc and loc[0] == where else loc
        name = ".".join(printable(str(x))[:64] if not isinstance(x, int) else f"[{x}]"
                        for x in rest)
        name = name.replace(".[", "[")
        label = (f"{where} parameter '{name}'" if where != "body" else
                 f"field '{name}'" if name else "the body")
        seen.setdefault(label, str(e.get("msg", "invalid")))
    return [f"{label}: {msg}" for label, msg in seen.items()] or ["invalid input"]


def _is_union_tag(x) -> bool:
    return isinstance(x, str) and (x in _UNION_TAGS or "-" in x or "[" in x)
