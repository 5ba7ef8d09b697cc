"""The one way a job comes to exist: write its queued record, then publish its training task.

POST /jobs, forks (api/submit.py), sweep children (tricklab.server.sweep_scheduler, from
the API and from the worker) and search trials all call `submit`. The caller passes the
publishing callable, so this module imports neither the API nor the worker: the API
publishes through its light Celery client, the worker through its own app, both by
task name (`celery_enqueue`).

The record is the truth and the broker message only a wake-up call: a publish that
fails is logged, the job stays queued, and the reconciler (worker/reconcile.py)
publishes it again once it has been missing from the broker for reconcile_after_s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tricklab.contract import TRAIN_TASK
from tricklab.server.store import Store

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str], None]  # (job_id, queue); may raise when the broker is down


def celery_enqueue(app: Any, *, retry: bool = True) -> Enqueue:
    """Publish TRAIN_TASK for a job with this Celery app. The API passes retry=False:
    its record is written already, so failing fast beats hanging the request."""

    def enqueue(job_id: str, queue: str) -> None:
        app.send_task(TRAIN_TASK, args=[job_id], queue=queue, retry=retry)

    return enqueue


def publish(enqueue: Enqueue, job_id: str, queue: str) -> bool:
    """Publish a queued job; False (logged) when that failed and the reconciler must."""
    try:
        enqueue(job_id, queue)
    except Exception:  # noqa: BLE001 - the record stays queued; the reconciler re-publishes it
        log.exception(
            "could not publish job %s to queue %s; left queued for the reconciler", job_id, queue
        )
        return False
    return True


def submit(
    store: Store,
    spec: dict[str, Any],
    *,
    tenant: str,
    queue: str,
    extra: dict[str, Any],
    enqueue: Enqueue,
    max_active: int | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Record a queued job and publish it; returns the record.

    Raises QuotaExceeded (nothing written) when the tenant already has max_active queued
    or running jobs. Never raises for a failed publish (see `publish`)."""
    rec = store.create_job(
        spec, tenant=tenant, queue=queue, extra=extra, job_id=job_id, max_active=max_active
    )
    publish(enqueue, rec["id"], queue)
    return rec
