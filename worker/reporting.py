"""The worker's training callbacks: progress, metrics and series to Redis.

The training thread never waits on Redis. The callbacks only build a log point's series
points and events and append them, under a lock, to the pending buffer; one background
thread (the LeaseKeeper's) writes the buffer at most every `min_interval_s` (0.25 s) as
one MULTI/EXEC of points, events and the fenced heartbeat (worker/report_write.py), which
renews the lease and stores progress, latest metrics and best. Idle, the thread beats every
CONTROL_POLL_S (and renews the lease at least every lease_s/3). Progress carries
`first_log_at`, the wall time of the attempt's first log point (with log_every 1: its
first optimizer step), so the time from the claim (`started_at`) to training is visible
on GET /jobs/{id}. Every point is written, however fast the run logs.

The heartbeat's answer is the control channel back into the loop: 2 means the user
cancelled, -1 means another attempt owns the job (this one must stop without writing its
outcome, and writes nothing more, not even its buffer). The writer thread applies the
answer and should_stop, polled at each log point, reads it: a cancel requested while log
points come fast stops the run at most min_interval_s + a round trip after the next log
point; with slower log points, within CONTROL_POLL_S + a round trip, at the next log point.

Series write rule (what makes `since`/`next_since` on GET /jobs/{id}/curves exact,
see tricklab.server.series.read_series): every point of one step goes into Redis in one
MULTI/EXEC, and writes come in increasing step order. The training loop calls
on_log for an epoch's last update *before* it evaluates and calls on_epoch_end
with the val_* points of the same step, so the series points of that log point
are held back (out of the buffer the thread drains) and enter the buffer together with
the epoch's. One writer at a time (a lock over draining and writing): batches go out in
the order they were drained. A write that fails (a Redis blip) never fails the run: its
points go back to the front of the buffer and the SeriesWriter is re-created, whose load
drops the points of a transaction that did apply after all; its events go back only when
Redis refused the whole transaction (after a lost connection they may have landed, and
events have no such check). The end of the run is synchronous: flush_pending (the
runner, then LeaseKeeper's exit once its thread has stopped) writes whatever is still
buffered, held points included (divergence, an exception in eval), so a non-finite
loss's point is in Redis before the run ends.

The writer thread also logs each epoch's line of the job's own log (GET /jobs/{id}/logs),
whose handler may itself wait on Redis (tricklab.server.joblog); it runs in the job's
logging context, so its records carry the job and attempt as the training thread's do.
"""

from __future__ import annotations

import contextvars
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
from worker.report_write import (
    Heartbeat,
    PartlyApplied,
    Point,
    jsonable,
    number,
    write_report,
)
from worker.system_series import SystemSampler

log = logging.getLogger(__name__)

EPOCH_SERIES = {"train_loss": "epoch_train_loss", "train_acc": "epoch_train_acc"}
# With no log point to write, the writer thread still asks this often whether the job was
# cancelled (a beat is one small script call), so slow log points do not slow a cancel.
CONTROL_POLL_S = 1.0


class Reporter(Callbacks):
    """Callbacks that buffer what one attempt of one job reports; `write_pending` (the
    LeaseKeeper's thread) and `flush_pending` (the end of the run) write it to Redis."""

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
        self.min_interval_s = min_interval_s
        self.last_write = 0.0  # monotonic time of the last write (or beat) tried
        # Shared between the training thread and the writer, under _lock (with _due, the
        # writer waits on it). Points and events not yet in Redis, in step order; an
        # epoch's last log point waits in _held for that epoch's metrics (the series
        # write rule above).
        self._lock = threading.Lock()
        self._due = threading.Condition(self._lock)
        self.pending: list[Point] = []
        self.pending_events: list[tuple[str, dict]] = []
        self._held: tuple[Point, dict[str, Any], dict[str, Any]] | None = None
        self._epoch_lines: list[tuple[Any, ...]] = []  # the job log's lines, logged by the writer
        self._changed = False  # progress changed since the last write
        self._urgent = False  # write at once (the start, a non-finite loss)
        self._closed = False  # the run ended: flush_pending wrote the rest
        self._writing = threading.Lock()  # one writer at a time: drain + write + apply

    # ------------------------------------------------------------ callbacks
    # Training thread: build, append under the lock, never touch Redis. The loop hands
    # over fresh dicts and never changes them after: the writer makes them JSON-safe.
    def on_start(self, info: dict[str, Any]) -> None:
        spe = info.get("steps_per_epoch")
        self.steps_per_epoch = int(spe) if isinstance(spe, int | float) and spe > 0 else None
        # memory figures no more often than the writes (worker/system_series.py)
        self.system = SystemSampler(info.get("device"), memory_every_s=self.min_interval_s)
        with self._lock:
            self._append(None, ("start", info), None, None, urgent=True)

    def on_log(self, step: int, metrics: dict[str, float], progress: dict[str, Any]) -> None:
        if self.first_log_at is None:
            self.first_log_at = round(time.time(), 4)
        prog = {**progress, "first_log_at": self.first_log_at}
        loss = number(metrics.get("train_loss"))
        ends_epoch = self.steps_per_epoch is not None and (step + 1) % self.steps_per_epoch == 0
        # the system figures are points of this step too: same transaction, same order
        point = {**metrics, **self.system.sample(prog)}
        finite = loss is None or math.isfinite(loss)
        with self._lock:
            self._release_held()
            if ends_epoch and finite:
                # on_epoch_end(step=step) follows with val_*: this log point (its series
                # points, and the metrics and progress it reports) goes out with them
                self._held = ((step, point), metrics, prog)
                return
            # A non-finite loss ends the run here, so that point is written at once.
            self._append((step, point), None, metrics, prog, urgent=not finite)

    def on_epoch_end(
        self, epoch: int, step: int, metrics: dict[str, float], progress: dict[str, Any]
    ) -> None:
        prog = {**progress, "first_log_at": self.first_log_at}
        acc = number(metrics.get("val_acc"))
        # The epoch means of train_* get their own series (as in TrainResult.history):
        # the step-level train_loss/train_acc series already has a point at this step.
        series = {EPOCH_SERIES.get(k, k): v for k, v in metrics.items()}
        with self._lock:
            self._release_held()
            if (
                acc is not None
                and math.isfinite(acc)
                and (self.best is None or acc > self.best["val_acc"])
            ):
                self.best = {"val_acc": acc, "epoch": epoch}
            # the lr of the epoch's last update rides along: with coalesced writes an epoch
            # event can reach a viewer before the metrics event of the same flush
            lr = self.latest.get("lr")
            lrs = {"lr": lr} if jsonable(lr) is not None else {}
            event: dict[str, Any] = {"epoch": epoch, "step": step, "metrics": {**lrs, **metrics}}
            # The job's own log (GET /jobs/{id}/logs) gets one line per epoch, logged by
            # the writer thread (the job log handler may do a Redis round trip).
            self._epoch_lines.append((epoch + 1, prog.get("epochs", "?"), step, event["metrics"]))
            self._append((step, series), ("epoch", event), metrics, prog)

    def should_stop(self) -> StopRequest:
        if self.stop is None and self.preempt_requested():
            with self._lock:
                self.stop = self.stop or "preempt"
        return self.stop

    def _append(
        self,
        point: Point | None,
        event: tuple[str, dict] | None,
        metrics: dict[str, Any] | None,
        progress: dict[str, Any] | None,
        urgent: bool = False,
    ) -> None:
        """(Under _lock.) Into the buffer, in step order; wakes the writer when it waits
        for nothing but a beat, or for an urgent write."""
        idle = not (self.pending or self.pending_events or self._changed)
        if point is not None:
            self.pending.append(point)
        if event is not None:
            self.pending_events.append(event)
        if metrics is not None:
            self.latest.update(metrics)
        if progress is not None:
            self.progress = progress
        self._changed = True
        self._urgent = self._urgent or urgent
        if idle or urgent:  # else the writer already waits for the buffer's due time
            self._due.notify()

    def _release_held(self) -> None:
        """(Under _lock.) A held log point joins the buffer: its epoch's points follow it
        (or the run ended, or, were the loop to skip its epoch end, a later step does)."""
        if self._held is not None:
            point, metrics, progress = self._held
            self._held = None
            self._append(point, None, metrics, progress)

    # ----------------------------------------------------------- the writer
    def wait_due(self, beat_every: float, done: threading.Event) -> None:
        """Block the writer thread until a write or a beat is due, or `done` is set (see
        `wake`): the buffer min_interval_s after the last write (at once when urgent),
        a beat beat_every after it."""
        with self._due:
            while not done.is_set():
                now = time.monotonic()
                wait = self.last_write + beat_every - now
                if self._urgent:
                    wait = 0.0
                elif self.pending or self.pending_events or self._changed:
                    wait = min(wait, self.last_write + self.min_interval_s - now)
                if wait <= 0:
                    return
                self._due.wait(wait)

    def wake(self) -> None:
        """Wake a writer waiting in wait_due (it then reads its `done`)."""
        with self._due:
            self._due.notify_all()

    def write_pending(self) -> None:
        """One write of what is buffered (with nothing buffered, or once the run has
        ended: a beat). A failed write is logged and its points stay buffered."""
        with self._writing:
            if self.fenced:
                return  # another attempt owns the job: not even a beat
            batch = self._drain(beat_only=self._closed)
            try:
                answer = self._write(*batch)
            except redis.RedisError as e:
                # A Redis blip must not fail the training run: the next write retries.
                # The writer's tails may now be ahead of Redis: re-read them on next use
                # (which also drops the retried points of a write that did land).
                log.warning("job %s: progress write failed: %s", self.job_id, e)
                self.series = SeriesWriter(self.raw, self.store.series_prefix(self.job_id))
                # The events go again only when Redis refused the whole transaction; after
                # a lost connection they may have landed, and a retry would repeat them.
                refused = isinstance(e, redis.ResponseError)
                with self._lock:
                    if not self.fenced:
                        self.pending[:0] = batch[0]
                        self.pending_events[:0] = batch[1] if refused else []
                    self._changed = True
                if isinstance(e, PartlyApplied) and e.answer is not None:
                    self._apply(e.answer)
                return
            except Exception:
                self.series = SeriesWriter(self.raw, self.store.series_prefix(self.job_id))
                raise
            finally:
                self._log_epochs()
            self._apply(answer)

    def flush_pending(self) -> None:
        """Write whatever is still buffered, now, on the caller's thread (the run has
        ended): one try; after it, the writer thread only beats."""
        with self._writing:
            with self._lock:
                self._closed = True
                self._release_held()
            batch = self._drain(beat_only=False)
            try:
                if (batch[0] or batch[1]) and not self.fenced:
                    self._apply(self._write(*batch))
            except redis.RedisError as e:
                # The finishing attempt rewrites any curve with a hole from its history
                # (runner._repair_series), so these points are not lost for good.
                log.warning("job %s: progress write failed: %s", self.job_id, e)
                self.series = SeriesWriter(self.raw, self.store.series_prefix(self.job_id))
            finally:
                self._log_epochs()

    def _drain(self, *, beat_only: bool) -> tuple[list[Point], list[tuple[str, dict]], Heartbeat]:
        """Take the buffer and what the heartbeat carries with it (progress, latest metrics,
        best): (points, events, heartbeat); with `beat_only`, none of it."""
        with self._lock:
            self.last_write = time.monotonic()
            if beat_only:  # after the run: the runner may be repairing the series now
                self.pending, self.pending_events, self._changed = [], [], False
                return [], [], Heartbeat(self.attempt, self.lease_s, None, None, None)
            points, self.pending = self.pending, []
            events, self.pending_events = self.pending_events, []
            progress = self.progress if self._changed else None
            self._changed = self._urgent = False
            metrics = dict(self.latest) if points else None
            best = self.best if points else None
        # the callbacks' own values (floats, maybe numpy/torch scalars): JSON-safe copies,
        # made here, off the training thread (the dicts are not changed after they are
        # handed over, except `latest`, copied above)
        events = [(kind, jsonable(data)) for kind, data in events]
        beat = Heartbeat(self.attempt, self.lease_s, jsonable(progress), jsonable(metrics), best)
        return points, events, beat

    def _write(self, points: list[Point], events: list[tuple[str, dict]], beat: Heartbeat) -> Any:
        return write_report(self.store, self.raw, self.series, self.job_id, points, events, beat)

    def _log_epochs(self) -> None:
        with self._lock:
            lines, self._epoch_lines = self._epoch_lines, []
        for epoch, epochs, step, metrics in lines:  # 1-based, as in the CLI
            log.info(
                "epoch %d/%s step %d %s",
                epoch,
                epochs,
                step,
                " ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in metrics.items()
                ),
            )

    def _apply(self, answer: Any) -> None:
        answer = Beat(int(answer))
        with self._lock:  # not logging under it: a log handler may wait on Redis
            cancel = answer == Beat.CANCEL and self.stop is None
            fenced = answer == Beat.FENCED and not self.fenced
            if cancel:
                self.cancelled = True
                self.stop = "cancel"
            elif fenced:
                self.fenced = True
                self.stop = "preempt"
                # nothing more goes out of this attempt, its buffer included
                self.pending, self.pending_events, self._held = [], [], None
        if cancel:
            log.info("job %s: cancel requested", self.job_id)
        elif fenced:
            log.warning("job %s: attempt %s was fenced out; stopping", self.job_id, self.attempt)


class LeaseKeeper:
    """The reporter's writer thread, for the whole job: writes the buffer at most every
    min_interval_s and beats at least every `interval_s` (lease_s/3: the lease) and
    CONTROL_POLL_S (cancel requests), during the run and after it, while the result is
    written. Its exit writes what is still buffered, once the thread has stopped."""

    def __init__(self, reporter: Reporter, interval_s: float) -> None:
        self.reporter = reporter
        self.interval_s = interval_s
        self._done = threading.Event()
        # The job's log context (job_id, attempt) rides along: the thread's records (the
        # epoch lines, a cancel, a fencing) go to the job's own log too.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._run,),
            name="lease-keeper",
            daemon=True,
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.reporter.wake()
        self._thread.join(5)  # past a slow write: flush_pending then waits for it
        try:
            self.reporter.flush_pending()  # the run has ended: write what is still buffered
        except Exception:  # noqa: BLE001 - a lost point must not fail the finish path
            log.warning("job %s: writing buffered log points failed", self.reporter.job_id)

    def _run(self) -> None:
        beat_every = min(self.interval_s, CONTROL_POLL_S)
        while True:
            self.reporter.wait_due(beat_every, self._done)
            if self._done.is_set():
                return
            try:
                self.reporter.write_pending()
            except Exception:  # noqa: BLE001 - not Redis (that is handled): log, go on
                log.warning("job %s: progress write failed", self.reporter.job_id, exc_info=True)
