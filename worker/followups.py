"""What happens after a job reaches a terminal state, on the worker's finish path.

- a succeeded job (not a fork) goes into the reuse index (tricklab.server.reuse), so
  POST /jobs?reuse=true finds it;
- a sweep child lets its sweep start the next pending child, and every finish lets the
  tenant's other open sweeps use the max_active_jobs slot it freed
  (tricklab.server.sweep_scheduler; the reconciler steps them too, as a fallback);
- a search trial (or confirm run) wakes its search's driver (api/search_driver.py),
  which tells Optuna the result and starts the next trial;

Each step is idempotent and never fails the job: errors are logged.
"""

from __future__ import annotations

import logging

from tricklab.server import reuse, sweep_scheduler
from tricklab.server.searches import SearchStore
from tricklab.server.store import Store
from tricklab.server.submit import celery_enqueue
from tricklab.server.sweeps import SweepStore

log = logging.getLogger(__name__)


def after_job(store: Store, job_id: str) -> None:
    try:
        from worker.celery_app import app  # here: it imports the tasks, which import us

        enqueue = celery_enqueue(app)
        job = store.get_job(job_id)
        lineage = job.get("lineage") or {}
        if job["status"] == "succeeded" and job.get("spec_hash") and not lineage.get("parent"):
            reuse.register(store, job["tenant"], job["spec_hash"], job_id)
        sweep_id = job.get("sweep_id") or None
        if sweep_id:
            sweep_scheduler.step(SweepStore(store), sweep_id, enqueue)
        sweep_scheduler.advance_open(store, enqueue, tenant=job["tenant"], skip=sweep_id)
        if job.get("search_id"):
            SearchStore(store).wake(job["search_id"])
    except Exception:  # noqa: BLE001 - follow-ups must not fail the job; the reconciler retries
        log.exception("job %s: follow-up after finish failed", job_id)
