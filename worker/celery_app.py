"""The one Celery app. Workers: `celery -A worker.celery_app:app worker -Q cpu`."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from tricklab.server.logs import setup_logging

app = Celery("tricklab", include=["worker.tasks", "worker.lifecycle"])
app.config_from_object("worker.celeryconfig")


@signals.setup_logging.connect
def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    """Replaces Celery's own logging setup: JSON lines (tricklab.server.logs), -l as the default level."""
    setup_logging("worker", level=loglevel, job_records=True)
