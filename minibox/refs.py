"""Image references: validation and normalization (``app`` → ``app:latest``).

Docker's grammar: an optional registry host[:port], slash-separated lowercase path
components, an optional ``:tag``.  Namespaced names (``team/app``) are valid everywhere —
unlike the reference engine, which refused any ``/``.
"""

from __future__ import annotations

import re

from minibox.errors import UserError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)"
_TAG = r"[\w][\w.-]{0,127}"
_REF = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?$")


def normalize(name: str) -> str:
    """Validate ``name`` and add ``:latest`` when it has no tag."""
    name = (name or "").strip()
    if not name:
        raise UserError("an image name is required", hint="use -t NAME[:TAG]")
    if len(name) > 255 or not _REF.match(name):
        hint = "names are lowercase letters, digits, '.', '_', '-' and '/', with an " \
               "optional ':tag'"
        if name.lower() != name and _REF.match(name.lower()):
            hint = f"image names must be lowercase: try '{name.lower()}'"
        raise UserError(f"invalid image name '{name}'", hint=hint)
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"
