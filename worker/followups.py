"""What happens after a job reaches a terminal state, on the worker's finish path.

- a succeeded job (not a fork) goes into the reuse index (tricklab.server.reuse), so
  POST /jobs?reuse=true finds it;
- a sweep child lets its sweep start the next pending child (tricklab.server.sweeps);
- an lr range test stores its curve as series `range_lr`, `range_loss` and
  `range_smoothed` (x = test step), next to the ones the reporter wrote.

Each step is idempotent and never fails the job: errors are logged.
"""

from __future__ import annotations

import logging
from typing import Any

from tricklab.server import reuse
from tricklab.server.series import SeriesWriter
from tricklab.server.store import Store
from tricklab.server.sweeps import SweepStore

log = logging.getLogger(__name__)


def _enqueue(job_id: str, queue: str) -> None:
    from worker.celery_app import app

    app.send_task("tricklab.train", args=[job_id], queue=queue)


def after_job(store: Store, job_id: str) -> None:
    try:
        job = store.get_job(job_id)
        lineage = job.get("lineage") or {}
        if job["status"] == "succeeded" and job.get("spec_hash") and not lineage.get("parent"):
            reuse.register(store, job["tenant"], job["spec_hash"], job_id)
        if job.get("sweep_id"):
            SweepStore(store).step(job["sweep_id"], _enqueue)
    except Exception:  # noqa: BLE001 - follow-ups must not fail the job; GET /sweeps/{id} retries
        log.exception("job %s: follow-up after finish failed", job_id)


def record_range_curve(raw: Any, store: Store, job_id: str, lr_range: dict[str, Any]) -> None:
    """The range test's full curve as series (the reporter only wrote log points)."""
    writer = SeriesWriter(raw, store.series_prefix(job_id))
    writer.load()
    steps = list(range(len(lr_range.get("lrs") or [])))
    with raw.pipeline(transaction=False) as pipe:
        for name, key in (
            ("range_lr", "lrs"),
            ("range_loss", "losses"),
            ("range_smoothed", "smoothed"),
        ):
            values = [float(v) for v in lr_range.get(key) or []]
            if values:
                writer.add(pipe, name, steps[: len(values)], values)
        pipe.execute()
