"""The Celery side: ``celery_app`` (the app, its queues and routes from minibox.wire),
thin tasks in ``build_tasks`` and ``runtime_tasks``, ``result_backend`` (trimmed
backends), ``main`` (``minibox-worker build|runtime|flower``), ``flower_auth`` (Flower's
credentials), ``heartbeat`` (a build worker's advertisement of its platform and
capacity), ``transport`` (kombu's Redis transport, reusing its client)."""

__all__ = ["build_tasks", "celery_app", "flower_auth", "heartbeat", "main", "result_backend",
           "runtime_tasks", "transport"]
