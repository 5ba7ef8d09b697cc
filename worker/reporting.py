"""The worker's training callbacks: progress, metrics and series to Redis.

One MULTI/EXEC round trip per log point: the metric series points (SeriesWriter
appends), an "epoch" event at epoch ends, and the fenced heartbeat that renews the
job's lease and stores progress, latest metrics and best. The heartbeat's answer
is the control channel back into the loop: 2 means the user cancelled, -1 means
another attempt owns the job (this one must stop without writing its outcome).

Series write rule (what makes `since`/`next_since` on GET /jobs/{id}/curves exact,
see tricklab.series.read_series): every point of one step goes into Redis in one
MULTI/EXEC, and writes come in increasing step order. The training loop calls
on_log for an epoch's last update *before* it evaluates and calls on_epoch_end
with the val_* points of the same step, so the series points of that log point
are held back and written in the epoch's transaction (the heartbeat is not held).
A held point also rides along with the next write of any kind, and LeaseKeeper's
exit writes it if the run ends in between (divergence, an exception in eval).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import redis

from tricklab.series import SeriesWriter
from tricklab.store import Store
from tricks.callbacks import Callbacks, StopRequest

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
        # series points of an epoch's last log point, waiting for that epoch's metrics
        self.held: tuple[int, dict[str, Any]] | None = None

    # ------------------------------------------------------------ callbacks
    def on_start(self, info: dict[str, Any]) -> None:
        spe = info.get("steps_per_epoch")
        self.steps_per_epoch = int(spe) if isinstance(spe, int | float) and spe > 0 else None
        self._flush(None, {}, None, event=("start", jsonable(info)))

    def on_log(self, step: int, metrics: dict[str, float], progress: dict[str, Any]) -> None:
        self.latest.update(jsonable(metrics))
        self.progress = jsonable(progress)
        loss = _number(metrics.get("train_loss"))
        ends_epoch = self.steps_per_epoch is not None and (step + 1) % self.steps_per_epoch == 0
        if ends_epoch and loss is not None and math.isfinite(loss):
            # on_epoch_end(step=step) follows with val_*: write these points with them.
            # (A non-finite loss ends the run here, so that point is written at once.)
            self._flush(step, {}, self.progress)  # heartbeat (and any older held point) now
            self.held = (step, dict(metrics))
            return
        self._flush(step, metrics, self.progress)

    def on_epoch_end(
        self, epoch: int, step: int, metrics: dict[str, float], progress: dict[str, Any]
    ) -> None:
        self.latest.update(jsonable(metrics))
        self.progress = jsonable(progress)
        acc = _number(metrics.get("val_acc"))
        if (
            acc is not None
            and math.isfinite(acc)
            and (self.best is None or acc > self.best["val_acc"])
        ):
            self.best = {"val_acc": acc, "epoch": epoch}
        event = {"epoch": epoch, "step": step, "metrics": jsonable(metrics)}
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
    def flush_held(self) -> None:
        """Write a held-back log point now (the run ended before its epoch's metrics)."""
        if self.held is not None and not self.fenced:
            self._flush(self.held[0], {}, self.progress)

    def _flush(
        self,
        step: int | None,
        metrics: dict[str, Any],
        progress: dict[str, Any] | None,
        event: tuple[str, dict] | None = None,
    ) -> None:
        held, self.held = self.held, None
        try:
            answer = self._write(step, metrics, progress, event, held)
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
        step: int | None,
        metrics: dict[str, Any],
        progress: dict[str, Any] | None,
        event: tuple[str, dict] | None,
        held: tuple[int, dict[str, Any]] | None = None,
    ) -> Any:
        # MULTI/EXEC: a reader's snapshot (read_series) sees all of a step's points or none
        with self.raw.pipeline(transaction=True) as pipe:
            points: list[tuple[int, dict[str, Any]]] = [held] if held is not None else []
            if step is not None:
                points.append((step, metrics))
            for at, values in points:  # held (an earlier or the same step) first
                for name, value in values.items():
                    v = _number(value)
                    if v is not None:
                        self.series.add(pipe, name, [at], [v])
            if event is not None:
                self.store.emit(self.job_id, event[0], event[1], pipe=pipe)
            self.store.heartbeat(
                self.job_id,
                self.attempt,
                lease_s=self.lease_s,
                progress=progress,
                metrics=self.latest if step is not None else None,
                best=self.best,
                pipe=pipe,
            )
            return pipe.execute()[-1]

    def renew_lease(self) -> None:
        """Heartbeat without data (the lease keeper thread, between slow log points)."""
        self._apply(self.store.heartbeat(self.job_id, self.attempt, lease_s=self.lease_s))

    def _apply(self, answer: Any) -> None:
        answer = int(answer)
        if answer == 2 and self.stop is None:
            log.info("job %s: cancel requested", self.job_id)
            self.cancelled = True
            self.stop = "cancel"
        elif answer == -1 and not self.fenced:
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
            self.reporter.flush_held()  # the run ended between a held point and its epoch end
        except Exception:  # noqa: BLE001 - a lost point must not fail the finish path
            log.warning("job %s: writing a held log point failed", self.reporter.job_id)

    def _run(self) -> None:
        while not self._done.wait(self.interval_s):
            try:
                self.reporter.renew_lease()
            except Exception:  # Redis blips: the next round or the next log point retries
                log.warning("job %s: lease renewal failed", self.reporter.job_id, exc_info=True)
