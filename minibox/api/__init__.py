"""The HTTP API of miniboxd: ``app.create_app`` (FastAPI), one router per resource in
``routers``, the error translation at the HTTP boundary in ``errors``, the token check in
``deps``, request size limits in ``limits``, streamed responses in ``streaming``."""

__all__ = ["app", "deps", "errors", "limits", "ndjson", "routers", "streaming"]
