"""Celery tasks, thin like web views: take an id, hand it to the code that does the work."""

from __future__ import annotations

from typing import Any

from tricklab.contract import TRAIN_TASK
from tricklab.server.joblog import job_log
from tricklab.settings import get_settings
from worker.celery_app import app
from worker.runner import clients, run_job


@app.task(name=TRAIN_TASK, bind=True)
def train_job(self: Any, job_id: str) -> None:
    """Claim job `job_id` and train it; a late or duplicate delivery is a no-op."""
    worker = self.request.hostname or "worker"
    store, _ = clients()
    # Log records inside carry job_id/worker and are copied to the job's own log stream;
    # the last lines wait for Redis through an outage, as the finish writes do.
    with job_log(
        store.r, store.p, job_id, worker=worker, close_retry_s=get_settings().finish_retry_s
    ):
        run_job(job_id, worker=worker)


@app.task(name="tricklab.noop", ignore_result=False)
def noop(value: Any = None) -> Any:
    """Round trip through broker and worker, for bench/dispatch.py."""
    return value
