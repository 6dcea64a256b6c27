"""Where the credentials ``minibox login`` writes are kept: ``MINIBOX_AUTH_FILE``, else
``$XDG_CONFIG_HOME/minibox/auth.json`` (``~/.config/minibox/auth.json``).

Only ``os``: the CLI's click-free pull and push (cli/fastimages.py) ask here first and read
a login only when the file exists."""

from __future__ import annotations

import os


def auth_file_path(env=None) -> str:
    env = os.environ if env is None else env
    explicit = (env.get("MINIBOX_AUTH_FILE") or "").strip()
    if explicit:
        return explicit
    base = (env.get("XDG_CONFIG_HOME") or "").strip() or \
        os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "minibox", "auth.json")
