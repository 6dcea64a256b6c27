"""The registry client: references with Docker Hub's defaults (``reference``), the
distribution-spec client (``client``, ``session``, ``auth``: bearer-token and basic auth),
``pull`` and ``push``, stored logins (``credentials``, kept where ``authfile`` says) and
registry settings (``config``: mirrors, insecure registries)."""

__all__ = ["auth", "authfile", "client", "config", "credentials", "pull", "push", "reference",
           "session"]
