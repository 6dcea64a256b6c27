"""The daemon's error answers, as the MiniBoxError the CLI prints (cli/client.py, which
translates every failure, reads them here).

Shapes understood: ours, ``{"error": {kind, message, hint[, exit_code]}}`` (an exit code,
e.g. 127 for a command not found, is what ``run`` ends with); FastAPI's validation answer,
``{"detail": [{"loc": [...], "msg": ...}, ...]}`` (each bad field named); ``{"detail":
"text"}``; anything else is quoted, shortened.  No click or json import: the fast
paths use this."""

from __future__ import annotations

from minibox.cli import fastjson as json
from minibox.errors import DaemonUnavailable, MiniBoxError, Unauthorized, UserError

_WHERE = ("body", "query", "path", "header")
_MAX_TEXT = 300


def daemon_error(status: int, raw: bytes, reason: str = "") -> MiniBoxError:
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        e = MiniBoxError.from_dict(err)
        if isinstance(err.get("exit_code"), int) and err["exit_code"]:
            e.exit_code = err["exit_code"]
        return e
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list) and detail:
        return UserError("the daemon refused the request: "
                         + "; ".join(_field_error(d) for d in detail))
    if status == 401:
        return Unauthorized("miniboxd refused the request: not authorized",
                            hint="set MINIBOX_API_TOKEN to the daemon's token")
    text = detail if isinstance(detail, str) else raw.decode("utf-8", "replace").strip()
    if "<" in text:           # a proxy's HTML page: its words
        import re
        text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())[:_MAX_TEXT] or reason or "no details"
    return MiniBoxError(f"miniboxd answered {status}: {text}",
                        hint="is MINIBOX_API a miniboxd of this version?" if status == 404 else None)


def lost_connection(e: Exception) -> DaemonUnavailable:
    """The connection broke in the middle of an answer (reset, timed out)."""
    return DaemonUnavailable(f"lost the connection to miniboxd: {e}", hint="is it still running?")


def _field_error(d) -> str:
    if not isinstance(d, dict):
        return str(d)
    loc = [str(x) for x in d.get("loc") or () if x not in _WHERE]
    msg = str(d.get("msg") or "invalid")
    return f"{'.'.join(loc)}: {msg}" if loc else msg
