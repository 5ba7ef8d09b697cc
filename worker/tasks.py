"""Celery tasks, thin like web views: take an id, hand it to the code that does the work."""

from __future__ import annotations

from typing import Any

from worker.celery_app import app
from worker.runner import run_job


@app.task(name="tricklab.train", bind=True)
def train_job(self: Any, job_id: str) -> None:
    """Claim job `job_id` and train it; a late or duplicate delivery is a no-op."""
    run_job(job_id, worker=self.request.hostname or "worker")


@app.task(name="tricklab.noop", ignore_result=False)
def noop(value: Any = None) -> Any:
    """Round trip through broker and worker, for bench/dispatch.py."""
    return value
