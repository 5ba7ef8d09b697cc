"""The worker's training callbacks: progress, metrics and series to Redis.

One MULTI/EXEC round trip carries the metric series points (SeriesWriter appends),
the events, and the fenced heartbeat that renews the job's lease and stores progress,
latest metrics and best. Progress carries `first_log_at`, the wall time of the
attempt's first log point (with log_every 1: its first optimizer step), so the time
from the claim (`started_at`) to training is visible on GET /jobs/{id}. Log points that come faster than `min_interval_s` (0.25 s)
are buffered in order and go out together with the next write: every point is still
written, but a fast run does not wait on Redis hundreds of times a second. The heartbeat's answer
is the control channel back into the loop: 2 means the user cancelled, -1 means
another attempt owns the job (this one must stop without writing its outcome).

Series write rule (what makes `since`/`next_since` on GET /jobs/{id}/curves exact,
see tricklab.server.series.read_series): every point of one step goes into Redis in one
MULTI/EXEC, and writes come in increasing step order. The training loop calls
on_log for an epoch's last update *before* it evaluates and calls on_epoch_end
with the val_* points of the same step, so the series points of that log point
are held back and written in the epoch's transaction. Buffered points are written
in step order, and LeaseKeeper's exit writes whatever is still buffered when the
run ends (divergence, an exception in eval).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from tricklab.server.outcomes import Beat
from tricklab.server.series import SeriesWriter
from tricklab.server.store import Store
from tricks.callbacks import Callbacks, StopRequest
from worker.system_series import SystemSampler

log = logging.getLogger(__name__)

EPOCH_SERIES = {"train_loss": "epoch_train_loss", "train_acc": "epoch_train_acc"}


def jsonable(v: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN), tensors/numpy -> numbers."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str | int):
        return v
    if hasattr(v, "item"):  # numpy / torch scalars
        try:
            v = v.item()
        except (ValueError, RuntimeError):
            return str(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, int | str | bool):
        return v
    return str(v)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if hasattr(v, "item"):
        v = v.item()
    return float(v) if isinstance(v, int | float) else None


class Reporter(Callbacks):
    """Callbacks that write to Redis for one attempt of one job."""

    def __init__(
        self,
        store: Store,
        raw_redis: Any,
        job_id: str,
        attempt: int,
        *,
        lease_s: float,
        preempt_requested: Callable[[], bool] = lambda: False,
        min_interval_s: float = 0.25,
    ) -> None:
        self.store = store
        self.raw = raw_redis  # bytes client: the series writer packs binary records
        self.job_id = job_id
        self.attempt = attempt
        self.lease_s = lease_s
        self.preempt_requested = preempt_requested
        self.series = SeriesWriter(raw_redis, store.series_prefix(job_id))
        self.series.load()  # after a resume, steps already stored are dropped
        self.latest: dict[str, Any] = {}
        self.best: dict[str, Any] | None = None
        self.progress: dict[str, Any] | None = None
        self.stop: StopRequest = None
        self.fenced = False
        self.cancelled = False
        self.steps_per_epoch: int | None = None
        # wall time of this attempt's first log point (progress.first_log_at): with
        # log_every 1 the end of its first optimizer step, which bench/job_latency.py
        # measures from the claim (started_at)
        self.first_log_at: float | None = None
        self.system = SystemSampler()  # sys_* series; on_start names the device
        # Points and events not yet in Redis, in step order. An epoch's last log point
        # always waits here for that epoch's metrics (the series write rule above).
        self.pending: list[tuple[int, dict[str, Any]]] = []
        self.pending_events: list[tuple[str, dict]] = []
        self.min_interval_s = min_interval_s
        self.last_write = 0.0

    # ------------------------------------------------------------ callbacks
    def on_start(self, info: dict[str, Any]) -> None:
        spe = info.get("steps_per_epoch")
        self.steps_per_epoch = int(spe) if isinstance(spe, int | float) and spe > 0 else None
        self.system = SystemSampler(info.get("device"))
        self._flush(None, {}, None, event=("start", jsonable(info)), force=True)

    def on_log(self, step: int, metrics: dict[str, float], progress: dict[str, Any]) -> None:
        if self.first_log_at is None:
            self.first_log_at = round(time.time(), 4)
        self.latest.update(jsonable(metrics))
        self.progress = {**jsonable(progress), "first_log_at": self.first_log_at}
        loss = _number(metrics.get("train_loss"))
        ends_epoch = self.steps_per_epoch is not None and (step + 1) % self.steps_per_epoch == 0
        # the system figures are points of this step too: same transaction, same order
        point = {**metrics, **self.system.sample(self.progress)}
        if ends_epoch and loss is not None and math.isfinite(loss):
            # on_epoch_end(step=step) follows with val_*: write these points with them.
            self.pending.append((step, point))
            return
        # A non-finite loss ends the run here, so that point is written at once.
        finite = loss is None or math.isfinite(loss)
        self._flush(step, point, self.progress, force=not finite)

    def on_epoch_end(
        self, epoch: int, step: int, metrics: dict[str, float], progress: dict[str, Any]
    ) -> None:
        self.latest.update(jsonable(metrics))
        self.progress = {**jsonable(progress), "first_log_at": self.first_log_at}
        acc = _number(metrics.get("val_acc"))
        if (
            acc is not None
            and math.isfinite(acc)
            and (self.best is None or acc > self.best["val_acc"])
        ):
            self.best = {"val_acc": acc, "epoch": epoch}
        # the lr of the epoch's last update rides along: with coalesced writes an epoch
        # event can reach a viewer before the metrics event of the same flush
        lr = {"lr": self.latest["lr"]} if self.latest.get("lr") is not None else {}
        event: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "metrics": {**lr, **jsonable(metrics)},
        }
        # The epoch means of train_* get their own series (as in TrainResult.history):
        # the step-level train_loss/train_acc series already has a point at this step.
        series = {EPOCH_SERIES.get(k, k): v for k, v in metrics.items()}
        self._flush(step, series, self.progress, event=("epoch", event))
        # The job's own log (GET /jobs/{id}/logs) gets one line per epoch, 1-based as in the CLI.
        log.info(
            "epoch %d/%s step %d %s",
            epoch + 1,
            (self.progress or {}).get("epochs", "?"),
            step,
            " ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in event["metrics"].items()
            ),
        )

    def should_stop(self) -> StopRequest:
        if self.stop is None and self.preempt_requested():
            self.stop = "preempt"
        return self.stop

    # ------------------------------------------------------------- plumbing
    def flush_pending(self) -> None:
        """Write whatever is still buffered (the run has ended)."""
        if (self.pending or self.pending_events) and not self.fenced:
            self._flush(None, {}, self.progress, force=True)

    def _flush(
        self,
        step: int | None,
        metrics: dict[str, Any],
        progress: dict[str, Any] | None,
        event: tuple[str, dict] | None = None,
        force: bool = False,
    ) -> None:
        if step is not None:
            self.pending.append((step, metrics))
        if event is not None:
            self.pending_events.append(event)
        now = time.monotonic()
        if not force and now - self.last_write < self.min_interval_s:
            return
        self.last_write = now
        points, self.pending = self.pending, []
        events, self.pending_events = self.pending_events, []
        try:
            answer = self._write(points, progress, events)
        except redis.RedisError as e:
            # A Redis blip must not fail the training run: the lease keeper keeps
            # retrying, the next log point writes again, and the finishing attempt
            # rewrites any curve with a hole from its history (runner._repair_series).
            # The writer's tails may now be ahead of Redis: re-read them on next use.
            log.warning("job %s: progress write failed: %s", self.job_id, e)
            self.series = SeriesWriter(self.raw, self.store.series_prefix(self.job_id))
            return
        self._apply(answer)

    def _write(
        self,
        points: list[tuple[int, dict[str, Any]]],
        progress: dict[str, Any] | None,
        events: list[tuple[str, dict]],
    ) -> Any:
        # MULTI/EXEC: a reader's snapshot (read_series) sees all of a step's points or none
        with self.raw.pipeline(transaction=True) as pipe:
            by_name: dict[str, tuple[list[int], list[float]]] = {}
            for at, values in points:  # in step order
                for name, value in values.items():
                    v = _number(value)
                    if v is not None:
                        steps, vals = by_name.setdefault(name, ([], []))
                        steps.append(at)
                        vals.append(v)
            for name, (steps, vals) in by_name.items():
                self.series.add(pipe, name, steps, vals)
            for kind, data in events:
                self.store.emit(self.job_id, kind, data, pipe=pipe)
            self.store.heartbeat(
                self.job_id,
                self.attempt,
                lease_s=self.lease_s,
                progress=progress,
                metrics=self.latest if points else None,
                best=self.best,
                pipe=pipe,
            )
            return pipe.execute()[-1]

    def renew_lease(self) -> None:
        """Heartbeat without data (the lease keeper thread, between slow log points)."""
        self._apply(self.store.heartbeat(self.job_id, self.attempt, lease_s=self.lease_s))

    def _apply(self, answer: Any) -> None:
        answer = Beat(int(answer))
        if answer == Beat.CANCEL and self.stop is None:
            log.info("job %s: cancel requested", self.job_id)
            self.cancelled = True
            self.stop = "cancel"
        elif answer == Beat.FENCED and not self.fenced:
            log.warning("job %s: attempt %s was fenced out; stopping", self.job_id, self.attempt)
            self.fenced = True
            self.stop = "preempt"


class LeaseKeeper:
    """Renews the lease every lease_s/3 while a job runs, whatever the log interval."""

    def __init__(self, reporter: Reporter, interval_s: float) -> None:
        self.reporter = reporter
        self.interval_s = interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)
        try:
            self.reporter.flush_pending()  # the run has ended: write what is still buffered
        except Exception:  # noqa: BLE001 - a lost point must not fail the finish path
            log.warning("job %s: writing buffered log points failed", self.reporter.job_id)

    def _run(self) -> None:
        while not self._done.wait(self.interval_s):
            try:
                self.reporter.renew_lease()
            except Exception:  # Redis blips: the next round or the next log point retries
                log.warning("job %s: lease renewal failed", self.reporter.job_id, exc_info=True)
