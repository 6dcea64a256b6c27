"""The project's own error types.

Third-party and kernel errors are translated into these once, at the boundary where they
happen (a syscall wrapper, the store, the Celery client).  The CLI and the API map them to
messages, HTTP statuses and exit codes; nothing above the boundary inspects an errno or a
redis exception.

Every error carries a message that says what went wrong and, where the user can act, a
``hint`` that says what to do.  ``to_dict``/``from_dict`` carry them across processes
(Celery results, HTTP bodies) without pickling.
"""

from __future__ import annotations


class MiniBoxError(Exception):
    """Base class.  ``http_status`` and ``exit_code`` say how the boundary reports it."""

    http_status = 500
    exit_code = 1
    kind = "internal"

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def render(self) -> str:
        """The full text shown to a person: the message, then the hint on its own line."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "hint": self.hint}

    @staticmethod
    def from_dict(data: dict) -> "MiniBoxError":
        cls = _KINDS.get(data.get("kind", ""), MiniBoxError)
        err = cls.__new__(cls)
        MiniBoxError.__init__(err, data.get("message", "unknown error"), hint=data.get("hint"))
        return err


class UserError(MiniBoxError):
    """Bad input: a malformed file or flag, a missing path.  Never a traceback."""

    http_status = 400
    exit_code = 2
    kind = "user"


class ParseError(UserError):
    """A MiniBox (or compose) file that does not parse.  Says file:line and shows the line."""

    kind = "parse"

    def __init__(self, message: str, *, path: str, line_no: int, line_text: str = "",
                 hint: str | None = None):
        self.path = path
        self.line_no = line_no
        self.line_text = line_text
        where = f"{path}:{line_no}: " if line_no else f"{path}: "
        text = where + message
        if line_text.strip():
            text += f"\n    {line_no} | {line_text.rstrip()}"
        super().__init__(text, hint=hint)


class NotFound(UserError):
    http_status = 404
    exit_code = 1
    kind = "not_found"


class Conflict(UserError):
    http_status = 409
    exit_code = 1
    kind = "conflict"


class Unauthorized(MiniBoxError):
    http_status = 401
    exit_code = 1
    kind = "unauthorized"


class BuildFailed(MiniBoxError):
    """A build step failed (a RUN exited non-zero, a COPY source vanished ...)."""

    http_status = 422
    exit_code = 1
    kind = "build"


class Cancelled(MiniBoxError):
    http_status = 409
    exit_code = 130
    kind = "cancelled"


class KernelError(MiniBoxError):
    """A syscall failed.  Raised only by minibox.kernel."""

    kind = "kernel"

    def __init__(self, message: str, *, errno: int = 0, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.errno = errno


class StoreError(MiniBoxError):
    """The data root is damaged or unwritable."""

    kind = "store"


class RegistryError(MiniBoxError):
    """A registry is unreachable, refused us, or sent something we cannot trust."""

    http_status = 502
    kind = "registry"


class DaemonUnavailable(MiniBoxError):
    """The CLI cannot reach miniboxd."""

    exit_code = 1
    kind = "unavailable"


_KINDS = {c.kind: c for c in (MiniBoxError, UserError, ParseError, NotFound, Conflict,
                              Unauthorized, BuildFailed, Cancelled, KernelError, StoreError,
                              RegistryError, DaemonUnavailable)}
