"""What one delivery of "tricklab.train" does: claim → load → train → save → finish.

Every write is fenced on the attempt number from the claim (tricklab.store), so a
late or duplicate delivery, or an attempt that lost its lease, cannot overwrite a
newer attempt or resurrect a finished job.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

import redis

from tricklab import telemetry
from tricklab.logs import set_attempt
from tricklab.settings import get_settings
from tricklab.store import JobNotFound, Store, connect
from worker import followups, lifecycle
from worker.reporting import LeaseKeeper, Reporter, jsonable

log = logging.getLogger(__name__)


@lru_cache
def _clients(pid: int) -> tuple[Store, redis.Redis]:
    """Per process (the pid in the cache key): a Store and a bytes client for the series."""
    s = get_settings()
    store = Store(connect(s.redis_url), s.key_prefix, s.events_maxlen)
    raw = redis.Redis.from_url(s.redis_url, socket_connect_timeout=2, socket_timeout=10)
    return store, raw


def clients() -> tuple[Store, redis.Redis]:
    import os

    return _clients(os.getpid())


def error_of(exc: BaseException) -> dict[str, str]:
    """{type, message} for the job record: readable, one line, no traceback."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return {"type": type(exc).__name__, "message": message[:500]}


def run_job(job_id: str, *, worker: str) -> None:
    s = get_settings()
    store, raw = clients()
    try:
        attempt, status = store.claim(
            job_id, worker, lease_s=s.lease_ttl_s, max_attempts=s.max_restarts + 1
        )
    except JobNotFound:
        log.warning("job %s: no such job; dropping the message", job_id)
        return
    if not attempt:
        log.info("job %s: not claimable (%s); nothing to do", job_id, status)
        followups.after_job(store, job_id)  # e.g. a cancelled sweep child: start the next
        return
    set_attempt(attempt)
    log.info("job %s: attempt %d on %s", job_id, attempt, worker)
    job = store.get_job(job_id)
    reporter = Reporter(
        store,
        raw,
        job_id,
        attempt,
        lease_s=s.lease_ttl_s,
        preempt_requested=lifecycle.preempt_requested,
    )
    job_dir = s.job_dir(job_id)
    started = time.monotonic()
    lifecycle.task_started()
    try:
        with LeaseKeeper(reporter, s.lease_ttl_s / 3):
            result = _train(job, reporter, job_dir)
    except Exception as exc:  # the job failed, not the worker: record it and move on
        log.exception("job %s: failed", job_id)
        if store.finish(job_id, attempt, "failed", error=error_of(exc)):
            telemetry.job_finished(store, job_id)
        followups.after_job(store, job_id)
        return
    finally:
        lifecycle.task_finished()

    if reporter.fenced:
        log.warning("job %s: attempt %d lost the job to another attempt", job_id, attempt)
        return
    if result.status == "preempted":
        _requeue(store, job, attempt)
        return
    summary: dict[str, Any] = {
        "metrics": jsonable(result.metrics),
        "best": jsonable(result.best),
        "steps": result.steps,
        "epochs_run": getattr(result, "epochs_run", None),
        "duration_s": round(time.monotonic() - started, 3),
        "attempt": attempt,
        "stop_reason": getattr(result, "stop_reason", None),
    }
    if getattr(result, "lr_range", None) is not None:
        summary["lr_range"] = jsonable(result.lr_range)
        summary["suggested_lr"] = summary["lr_range"].get("suggested_lr")
        summary["rule"] = summary["lr_range"].get("rule")
        followups.record_range_curve(raw, store, job_id, summary["lr_range"])
    if result.status == "succeeded" and result.model_state is not None:
        from tricks.checkpoint import save_model

        save_model(result.model_state, job_dir / "model.safetensors")
        summary["model"] = "model.safetensors"
    error = jsonable(result.error) if result.error else None
    if store.finish(job_id, attempt, result.status, error=error, result=summary):
        telemetry.job_finished(store, job_id)
        log.info("job %s: %s after %d steps", job_id, result.status, result.steps)
    else:
        log.warning("job %s: finish(%s) fenced out", job_id, result.status)
    followups.after_job(store, job_id)


def _train(job: dict[str, Any], reporter: Reporter, job_dir: Any) -> Any:
    # Imported here, not at module import: the worker parent pre-imports them once
    # (worker.lifecycle) so a job does not pay for `import torch`.
    from tricks.data import load_dataset
    from tricks.spec import JobSpec
    from tricks.train import train

    s = get_settings()
    spec = JobSpec.model_validate(job["spec"])
    dataset = load_dataset(spec.data, spec.training.seed, s.datasets_dir)
    lineage = job.get("lineage") or {}
    if lineage.get("parent"):  # a fork: start from the parent's checkpoint at from_epoch
        from tricks.fork import seed_checkpoint
        from tricks.pinned import pinned_path

        parent_dir = s.job_dir(lineage["parent"]) / "checkpoints"
        seed_checkpoint(
            pinned_path(parent_dir, lineage["from_epoch"]), job_dir / "checkpoints", spec
        )
    return train(spec, dataset, reporter, checkpoint_dir=job_dir / "checkpoints")


def _requeue(store: Store, job: dict[str, Any], attempt: int) -> None:
    from worker.celery_app import app

    job_id = job["id"]
    res = store.requeue(job_id, attempt, "preempted")
    if res == 1:
        app.send_task("tricklab.train", args=[job_id], queue=job.get("queue") or "cpu")
        log.info("job %s: preempted; checkpointed and re-queued", job_id)
    elif res == 2:
        log.info("job %s: preempted with a cancel pending; cancelled", job_id)
