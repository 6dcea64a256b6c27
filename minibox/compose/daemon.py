"""Compose's one way to the daemon: the container, volume, image and build routes of the
API (compose is a client, like docker compose), through the CLI's client (cli/client.py: a
new connection per request, so the threads of an `up` share it; errors are the daemon's
MiniBoxErrors)."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from minibox.compose.plan import LABEL_PROJECT
from minibox.errors import NotFound


def _q(ref: str) -> str:
    return quote(ref, safe="")


class Daemon:
    def __init__(self, client=None):
        if client is None:
            from minibox.cli.client import Client
            client = Client(timeout=None)
        self.c = client

    # --- containers ---------------------------------------------------------------
    def containers(self, project: str) -> dict[str, dict]:
        """The project's containers (running or not) by name, each with its labels."""
        rows = self.c.get("/containers", params=[("all", "true"), (
            "filter", f"label={LABEL_PROJECT}={project}")]).json()
        return {r["name"]: r for r in rows}

    def inspect(self, ref: str) -> dict | None:
        try:
            return self.c.get(f"/containers/{_q(ref)}").json()
        except NotFound:
            return None

    def run(self, body: dict) -> dict:
        return self.c.post("/containers", json=body).json()

    def start(self, ref: str) -> None:
        self.c.post(f"/containers/{_q(ref)}/start")

    def stop(self, refs: list[str], t: float = 10) -> None:
        if refs:
            self.c.post("/containers/stop", json={"ids": refs, "t": t})

    def remove(self, ref: str, volumes: bool = False) -> None:
        try:
            self.c.delete(f"/containers/{_q(ref)}", params={"force": True, "volumes": volumes})
        except NotFound:
            pass

    def logs(self, ref: str, follow: bool):
        """A streamed response of the container's multiplexed output (with timestamps)."""
        return self.c.stream("GET", f"/containers/{_q(ref)}/logs",
                             params={"follow": follow, "mux": True, "timestamps": True})

    # --- images and builds ------------------------------------------------------------
    def image_digest(self, ref: str) -> str | None:
        try:
            return self.c.get(f"/images/{quote(ref, safe='/:@')}/json").json()["digest"]
        except NotFound:
            return None

    def build(self, context: str, minibox_file: str, tag: str) -> str:
        """Submit a build (the context uploaded as `minibox build` does); its job id."""
        import os
        import tempfile
        from minibox.builder.context import pack_context
        with open(minibox_file, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        with tempfile.SpooledTemporaryFile(max_size=16 << 20) as tar:
            pack_context(context, tar)
            tar.seek(0)
            files = {"context": ("context.tar", tar, "application/x-tar")}
            data = {"tag": tag, "file": os.path.relpath(minibox_file, context), "minibox": text}
            return self.c.post("/builds", data=data, files=files).json()["id"]

    def wait_build(self, job: str) -> dict:
        """Follow the job's events to its end; the job record (status, error)."""
        with self.c.stream("GET", f"/builds/{job}/events") as r:
            for line in r.iter_lines():
                if line.strip() and json.loads(line).get("type") in (
                        "job_done", "job_failed", "job_cancelled"):
                    break
        return self.c.get(f"/builds/{job}").json()

    # --- volumes ------------------------------------------------------------------------
    def ensure_volume(self, name: str, labels: dict) -> bool:
        """True if it was made now (creating an existing volume is a no-op)."""
        if self.volume_exists(name):
            return False
        self.c.post("/volumes", json={"name": name, "labels": labels})
        return True

    def volume_exists(self, name: str) -> bool:
        try:
            self.c.get(f"/volumes/{_q(name)}")
            return True
        except NotFound:
            return False

    def remove_volume(self, name: str) -> bool:
        try:
            self.c.delete(f"/volumes/{_q(name)}")
            return True
        except NotFound:
            return False

    def wait_until(self, ref: str, done, timeout: float | None = None, every: float = 0.1):
        """Poll the container's inspect until ``done(info)`` is not None; its value."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.inspect(ref)
            verdict = done(info)
            if verdict is not None:
                return verdict
            if end is not None and time.monotonic() > end:
                return None
            time.sleep(every)
