"""The HTTP API of miniboxd: ``app.create_app`` (FastAPI), one router per resource in
``routers``, the error translation at the HTTP boundary in ``errors``."""

__all__ = ["app", "deps", "errors", "routers"]
