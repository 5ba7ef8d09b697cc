"""A light Celery app that only publishes: the API enqueues by task name, never imports the worker."""

from __future__ import annotations

from celery import Celery

from tricklab.settings import Settings


def make_celery(settings: Settings) -> Celery:
    app = Celery("tricklab-api", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=False,
        # Publishing must fail fast: the job record is already written and a
        # reconciler re-publishes queued jobs, so a hang here helps nobody.
        broker_connection_timeout=2,
        broker_transport_options={"socket_timeout": 5, "socket_connect_timeout": 2},
    )
    return app
