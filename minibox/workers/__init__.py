"""The Celery side: ``celery_app`` (the app, its queues and routes from minibox.wire),
thin tasks in ``build_tasks`` and ``runtime_tasks``, ``result_backend`` (the runtime
worker's), ``main`` (``minibox-worker build|runtime|flower``)."""

__all__ = ["build_tasks", "celery_app", "main", "result_backend", "runtime_tasks"]
