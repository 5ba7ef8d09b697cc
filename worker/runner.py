"""What one delivery of the training task (tricklab.contract.TRAIN_TASK) does: claim → load → train → save → finish.

Every write is fenced on the attempt number from the claim (tricklab.server.store), so a
late or duplicate delivery, or an attempt that lost its lease, cannot overwrite a
newer attempt or resurrect a finished job.

The end of a job is inside the error handling too: the claim and every write that
records how the job ended are retried through a Redis outage of up to
settings.finish_retry_s (worker.retry; safe because they are fenced), the lease is kept
while the result is written, and a failure writing an artifact (a full disk at the final
model.safetensors) ends the job `failed` with its reason instead of raising out of the
task, which would leave it `running` until the reaper re-ran it into the restart limit.
Error messages never carry server paths (`worker.errors.public_message`).
"""

from __future__ import annotations

import logging
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import redis

from tricklab.contract import TRAIN_TASK, JobStatus
from tricklab.procs import pid_alive
from tricklab.server import telemetry
from tricklab.server.connection import connect
from tricklab.server.joblog import flush_job_log
from tricklab.server.logs import set_attempt
from tricklab.server.outcomes import JobNotFound, Requeued
from tricklab.server.store import Store
from tricklab.settings import get_settings
from worker import followups, lifecycle
from worker.errors import error_of
from worker.report_write import jsonable
from worker.reporting import LeaseKeeper, Reporter
from worker.retry import RETRYABLE, with_retry

log = logging.getLogger(__name__)


@lru_cache
def _clients(pid: int) -> tuple[Store, redis.Redis]:
    """Per process (the pid in the cache key): a Store and a bytes client for the series."""
    s = get_settings()
    store = Store(connect(s.redis_url), s.key_prefix, s.events_maxlen)
    raw = redis.Redis.from_url(s.redis_url, socket_connect_timeout=2, socket_timeout=10)
    return store, raw


def clients() -> tuple[Store, redis.Redis]:
    return _clients(os.getpid())


def _claim_after_holder(store: Store, job_id: str, worker: str) -> tuple[int, str | None]:
    """The job is running under a live lease: take it over once its holder is gone.

    Celery re-delivers a task at once when the pool child running it dies
    (reject_on_worker_lost), while the dead attempt's lease is still live. When the
    holder was a process of this very worker and that process is gone, its attempt is
    re-queued (fenced on the attempt) and claimed again now. Otherwise wait for the
    lease: if it expires, claim (the holder died); if it is renewed, a live attempt
    holds the job and this delivery is a duplicate: drop it. Bounded by lease_ttl_s.
    """
    s = get_settings()
    job = store.get_job(job_id)
    holder_pid = int(job.get("worker_pid") or 0)
    if job.get("worker") == worker and holder_pid and _holder_gone(holder_pid):
        if store.requeue(job_id, job["attempts"], "worker lost") == Requeued.REQUEUED:
            log.warning(
                "job %s: attempt %d died with its process; resuming", job_id, job["attempts"]
            )
        return store.claim(job_id, worker, lease_s=s.lease_ttl_s, max_attempts=s.max_restarts + 1)
    first_lease = job.get("lease_until")
    deadline = time.monotonic() + s.lease_ttl_s + 2
    while time.monotonic() < deadline:
        time.sleep(min(0.5, s.lease_ttl_s / 6))
        attempt, status = store.claim(
            job_id, worker, lease_s=s.lease_ttl_s, max_attempts=s.max_restarts + 1
        )
        if attempt or status != JobStatus.RUNNING:
            return attempt, status
        if store.get_job(job_id).get("lease_until") != first_lease:
            return 0, "running (held by a live attempt)"
    return 0, "running"


def _holder_gone(pid: int) -> bool:
    """The attempt's holder process has exited (this process is not it: it is here to
    claim the job)."""
    return pid == os.getpid() or not pid_alive(pid)


def _repair_series(raw: Any, store: Store, job_id: str, history: dict[str, Any] | None) -> None:
    """Make the stored curves equal the run's own history before the job is finished.

    Points written while Redis was unreachable, or acknowledged by a Redis that then
    lost them (AOF fsync window), leave holes that appends cannot fill; the finishing
    attempt holds the whole history (checkpoints carry it), so it rewrites any series
    that differs. Costs one read per series; writes only on a mismatch.
    """
    from tricklab.server.keyspace import Keyspace
    from tricklab.server.series import SeriesWriter, read_series

    if not history:
        return
    prefix = store.series_prefix(job_id)
    try:
        stored = read_series(raw, prefix, names=list(history))["series"]
        bad = [
            name
            for name, h in history.items()
            if [int(x) for x in h["step"]] != stored.get(name, {}).get("step")
        ]
        if not bad:
            return
        log.warning("job %s: rewriting series %s from the run's history", job_id, bad)
        with raw.pipeline(transaction=True) as pipe:
            for name in bad:
                pipe.delete(*Keyspace.series_keys(prefix, [name]))
            pipe.execute()
        writer = SeriesWriter(raw, prefix)
        writer.load()
        with raw.pipeline(transaction=False) as pipe:
            for name in bad:
                h = history[name]
                writer.add(pipe, name, [int(x) for x in h["step"]], [float(v) for v in h["value"]])
            pipe.execute()
    except RETRYABLE:
        raise  # Redis is away: the caller retries the whole repair (it is idempotent)
    except redis.RedisError:
        log.warning("job %s: could not check the stored series", job_id, exc_info=True)


# The range test's per-step curve is stored once, as range_* (the public names: the
# dashboard's range page, INTERNALS.md); its live series keep only their log points.
RANGE_SERIES = {"lr": "range_lr", "train_loss": "range_loss", "smoothed_loss": "range_smoothed"}


def _range_curve(history: dict[str, Any] | None) -> dict[str, Any] | None:
    """The range test's history under the range_* names (what _repair_series writes)."""
    if not history:
        return history
    return {RANGE_SERIES[k]: v for k, v in history.items() if k in RANGE_SERIES}


def run_job(job_id: str, *, worker: str) -> None:
    """Claim the job, train it, record how it ended, then run the follow-ups."""
    s = get_settings()
    store, raw = clients()
    attempt = _claim(store, job_id, worker)
    if not attempt:
        return

    def retry(fn: Any, what: str) -> Any:
        return with_retry(fn, what=f"job {job_id}: {what}", budget_s=s.finish_retry_s)

    # Which process holds the attempt: a re-delivery on this worker can then tell that
    # the holder died (the pool child was killed) and take over without waiting.
    retry(lambda: store.set_fields(job_id, worker_pid=str(os.getpid())), "record the pid")
    job = retry(lambda: store.get_job(job_id), "read the job")
    _clean_torn_writes(s.job_dir(job_id))
    reporter = retry(
        lambda: Reporter(
            store,
            raw,
            job_id,
            attempt,
            lease_s=s.lease_ttl_s,
            preempt_requested=lifecycle.preempt_requested,
        ),
        "read the stored series",
    )
    reporter.best = job.get("best")  # a resumed attempt carries the run's best so far
    started = time.monotonic()
    lifecycle.task_started()
    ending: tuple[str, dict[str, Any]] | None = None  # (status, fields) for _finish
    try:
        # The lease is kept until the result is written: a large model takes a while to
        # save, and a Redis outage here must not let the reaper take the job meanwhile.
        with LeaseKeeper(reporter, s.lease_ttl_s / 3):
            try:
                result = _train(job, reporter, s.job_dir(job_id))
            finally:
                lifecycle.task_finished()
            reporter.flush_pending()  # the series first, then the result that repairs them
            if not reporter.fenced and result.status != "preempted":
                ending = _record_result(
                    store, raw, job, attempt, result, time.monotonic() - started
                )
    except RETRYABLE:
        # Redis stayed away past finish_retry_s: the job stays running, its lease lapses
        # and the reaper re-queues it; the next attempt resumes from the last checkpoint.
        log.exception("job %s: could not record how the job ended", job_id)
        raise
    except Exception as exc:  # the job failed, not the worker: record it and move on
        log.exception("job %s: failed", job_id)
        ending = (JobStatus.FAILED, {"error": error_of(exc)})
    # after the lease keeper stopped: its next beat would see the job queued or finished
    if ending is not None:
        _finish(store, job_id, attempt, ending[0], **ending[1])
    elif reporter.fenced:
        log.warning("job %s: attempt %d lost the job to another attempt", job_id, attempt)
    else:  # preempted
        _requeue(store, job, attempt)


def _clean_torn_writes(job_dir: Path) -> None:
    """Temporary files of writes torn by a killed attempt (this attempt writes nothing yet)."""
    from tricks.checkpoint import clean_partial_writes

    removed = clean_partial_writes(job_dir)
    if removed:
        log.info("removed %d partial file(s) of an earlier attempt", len(removed))


def _claim(store: Store, job_id: str, worker: str) -> int:
    """The attempt number this delivery holds, or 0 when there is nothing to do."""
    s = get_settings()
    what = f"job {job_id}: claim"
    try:
        attempt, status = with_retry(
            lambda: store.claim(
                job_id, worker, lease_s=s.lease_ttl_s, max_attempts=s.max_restarts + 1
            ),
            what=what,
            budget_s=s.finish_retry_s,
        )
    except JobNotFound:
        log.warning("job %s: no such job; dropping the message", job_id)
        return 0
    if not attempt and status == JobStatus.RUNNING:
        # e.g. a claim that landed but whose answer was lost: this worker's own holder
        attempt, status = with_retry(
            lambda: _claim_after_holder(store, job_id, worker), what=what, budget_s=s.finish_retry_s
        )
    if not attempt:
        log.info("job %s: not claimable (%s); nothing to do", job_id, status)
        followups.after_job(store, job_id)  # e.g. a cancelled sweep child: start the next
        return 0
    set_attempt(attempt)
    log.info("job %s: attempt %d on %s", job_id, attempt, worker)
    return attempt


def _record_result(
    store: Store, raw: Any, job: dict[str, Any], attempt: int, result: Any, duration_s: float
) -> tuple[str, dict[str, Any]]:
    """A run that ended on its own (succeeded, failed in training, cancelled): its curves,
    final metrics, model and summary. Returns the terminal status and its fields."""
    job_id = job["id"]
    budget = get_settings().finish_retry_s

    def retry(fn: Any, what: str) -> Any:
        return with_retry(fn, what=f"job {job_id}: {what}", budget_s=budget)

    history = result.history
    if (job.get("spec") or {}).get("task") == "lr_range_test":
        history = _range_curve(history)
    retry(lambda: _repair_series(raw, store, job_id, history), "repair the series")
    # The run's own final values: live heartbeats may have been lost in a Redis outage.
    final: dict[str, Any] = {"metrics": {**(job.get("metrics") or {}), **jsonable(result.metrics)}}
    if result.best and result.best.get("val_acc") is not None:
        final["best"] = jsonable(result.best)  # over every attempt
    retry(lambda: store.set_fields(job_id, **final), "write the final metrics")
    summary: dict[str, Any] = {
        "metrics": jsonable(result.metrics),
        "best": jsonable(result.best),
        "steps": result.steps,
        "epochs_run": result.epochs_run,
        "duration_s": round(duration_s, 3),
        "attempt": attempt,
        "stop_reason": result.stop_reason,
    }
    if result.lr_range is not None:
        lr_range = jsonable(result.lr_range)
        summary.update(
            lr_range=lr_range, suggested_lr=lr_range.get("suggested_lr"), rule=lr_range.get("rule")
        )
    status = result.status
    error = jsonable(result.error) if result.error else None
    if status == JobStatus.SUCCEEDED and result.model_state is not None:
        from tricks.checkpoint import save_model

        meta = job.get("dataset_meta") or {}  # what the API resolved the dataset to
        try:
            save_model(
                result.model_state,
                get_settings().job_dir(job_id) / "model.safetensors",
                spec=job["spec"],
                input_shape=meta.get("input_shape"),
                num_classes=meta.get("num_classes"),
            )
        except OSError as e:  # a full disk, above all: the job cannot succeed without it
            log.error("job %s: could not save the model: %s", job_id, e)
            status, error = JobStatus.FAILED, error_of(e)
        else:
            summary["model"] = "model.safetensors"
    log.info("job %s: ending as %s after %d steps", job_id, status, result.steps)
    return status, {"error": error, "result": summary}


def _finish(store: Store, job_id: str, attempt: int, status: str, **fields: Any) -> None:
    """The terminal status (fenced on the attempt), its metric, and the follow-ups."""
    budget = get_settings().finish_retry_s
    flush_job_log(retry_s=budget)  # the job's log is complete once its status is visible
    finished = with_retry(
        lambda: store.finish(job_id, attempt, status, **fields),
        what=f"job {job_id}: finish({status})",
        budget_s=budget,
    )
    if finished:
        telemetry.job_finished(store, job_id)
    else:
        log.warning("job %s: finish(%s) fenced out", job_id, status)
    followups.after_job(store, job_id)


def _train(job: dict[str, Any], reporter: Reporter, job_dir: Any) -> Any:
    # Imported here, not at module import: the worker parent pre-imports them once
    # (worker.lifecycle) so a job does not pay for `import torch`.
    from tricks.data import load_dataset
    from tricks.spec import JobSpec
    from tricks.train import train

    s = get_settings()
    spec = JobSpec.model_validate(job["spec"])
    # uploads through the process's byte-bounded cache of memory-mapped arrays (tricks.data_cache)
    dataset = load_dataset(
        spec.data, spec.training.seed, s.datasets_dir, cache_bytes=s.data_cache_bytes
    )
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
    res = with_retry(
        lambda: store.requeue(job_id, attempt, "preempted"),
        what=f"job {job_id}: requeue",
        budget_s=get_settings().finish_retry_s,
    )
    if res == Requeued.REQUEUED:
        app.send_task(TRAIN_TASK, args=[job_id], queue=job.get("queue") or "cpu")
        log.info("job %s: preempted; checkpointed and re-queued", job_id)
    elif res == Requeued.CANCELLED:
        log.info("job %s: preempted with a cancel pending; cancelled", job_id)
