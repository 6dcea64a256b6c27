

__all__ = ["daemon", "logs", "model", "netadapter", "network_schema", "ops", "plan", "render",
           "schema", "source", "up"]
