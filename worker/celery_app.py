"""The one Celery app. Workers: `celery -A worker.celery_app:app worker -Q cpu`."""

from __future__ import annotations

from celery import Celery

app = Celery("tricklab", include=["worker.tasks", "worker.lifecycle"])
app.config_from_object("worker.celeryconfig")
