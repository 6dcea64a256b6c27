"""A small JSON state file under the data root, changed under an exclusive flock and
replaced atomically (rename), so concurrent workers see either the old or the new whole."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from minibox import atomic


class JsonState:
    def __init__(self, directory: str | os.PathLike, name: str):
        self.dir = Path(directory)
        self.path = self.dir / f"{name}.json"
        self.lock_path = self.dir / f"{name}.lock"

    @contextlib.contextmanager
    def locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def write(self, data: dict) -> None:
        atomic.write_json(self.path, data, indent=1)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
