"""One FastAPI router per resource; ``api.app`` mounts them all."""

__all__ = ["builds", "containers", "images", "system", "tty_sessions", "volumes", "networks",
           "workers"]
