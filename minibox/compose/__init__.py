

__all__ = ["daemon", "logs", "model", "netadapter", "ops", "plan", "render", "schema",
           "source", "up"]
