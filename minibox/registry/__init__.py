"""The registry client: references with Docker Hub's defaults (``reference``), the
distribution-spec client (``client``, ``session``, ``auth``: bearer-token and basic auth),
``pull`` and ``push``, stored logins (``credentials``) and registry settings (``config``:
mirrors, insecure registries)."""

__all__ = ["auth", "client", "config", "credentials", "pull", "push", "reference", "session"]
