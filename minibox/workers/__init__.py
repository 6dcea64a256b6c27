"""The Celery side: ``celery_app`` (the app, its queues and routes from minibox.wire),
thin tasks in ``build_tasks`` and ``runtime_tasks``, ``result_backend`` (the runtime
worker's), ``main`` (``minibox-worker build|runtime|flower``), ``flower_auth`` (Flower's
credentials)."""

__all__ = ["build_tasks", "celery_app", "flower_auth", "main", "result_backend",
           "runtime_tasks"]
