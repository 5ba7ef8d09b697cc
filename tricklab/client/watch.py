"""Live progress of a job in a terminal: a redrawn bar on a TTY, one line per epoch otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from tricklab.client.cli_util import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    _duration,
    _ep,
    error_text,
)
from tricklab.client.http import TERMINAL, ApiError, Client, ConnectionError

# --------------------------------------------------------------------- progress


class Progress:
    """Folds job events into one status line; redraws with \\r on a TTY, else a line per epoch.

    The worker emits `status`, `start` {total_steps, steps_per_epoch, epochs, device, ...}
    and `epoch` {epoch, step, metrics} events; `progress`/`metric` events are accepted too.
    """

    def __init__(self, stream=None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.status = "queued"
        self.progress: dict[str, Any] = {}
        self.metrics: dict[str, Any] = {}
        self.error: Any = None
        self._last_epoch: Any = None
        self._drawn = False
        self._width = 0
        self._t0: float | None = None
        self._epoch_event = False  # the next draw() prints a line (non-TTY)
        self._saw_epoch_events = False
        self._seen_epoch: Any = None

    def update_job(self, job: dict[str, Any]) -> None:
        self.status = job.get("status") or self.status
        self.progress.update(job.get("progress") or {})
        self.metrics.update(job.get("metrics") or {})
        self.error = job.get("error") or self.error

    def feed(self, etype: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if etype == "status":
            prev = self.status
            self.status = data.get("status") or self.status
            self.error = data.get("error") or self.error
            if self.status != prev and self.status not in TERMINAL:
                self._line(f"status: {self.status}")
            return
        if etype == "start":
            self._t0 = time.monotonic()
            for k in ("total_steps", "epochs"):
                if k in data:
                    self.progress[k] = data[k]
            if data.get("steps_per_epoch"):
                self.progress["steps_per_epoch"] = data["steps_per_epoch"]
            where = ", ".join(
                str(data[k]) for k in ("device", "precision") if data.get(k) is not None
            )
            resumed = data.get("resumed_from_step")
            self._line(
                f"training: {data.get('epochs', '?')} epochs, {data.get('total_steps', '?')} steps"
                + (f" on {where}" if where else "")
                + (f", resumed from step {resumed}" if resumed else "")
            )
            return
        if etype == "error":
            self._line(f"stream error: {data.get('message') or data}")
            return
        prog = data.get("progress")
        if isinstance(prog, dict):
            self.progress.update(prog)
        elif etype == "progress":
            self.progress.update({k: v for k, v in data.items() if k != "metrics"})
        elif etype == "epoch":
            self.progress.update({k: v for k, v in data.items() if k in ("epoch", "step")})
            if isinstance(data.get("step"), int):
                # the step of an epoch event is the last update of that epoch (0-based)
                self.progress["step"] = data["step"] + 1
                self.progress.pop("fraction", None)
        if etype == "epoch":
            self._saw_epoch_events = self._epoch_event = True
        elif not self.tty and not self._saw_epoch_events and "epoch" in self.progress:
            # no epoch events from this worker: a line when the epoch number moves on
            prev = self._seen_epoch
            self._epoch_event = prev is not None and self.progress["epoch"] != prev
            self._seen_epoch = self.progress["epoch"]
        mets = data.get("metrics")
        if isinstance(mets, dict):
            self.metrics.update(mets)
        elif "name" in data and "value" in data:  # one metric point
            self.metrics[data["name"]] = data["value"]
        elif etype in ("metric", "metrics"):
            self.metrics.update(
                {k: v for k, v in data.items() if k not in ("step", "epoch", "progress")}
            )
        self.draw()

    def _fraction(self) -> float:
        p = self.progress
        frac = p.get("fraction")
        step, total = p.get("step"), p.get("total_steps")
        if frac is None and isinstance(step, int | float) and total:
            frac = step / total
        return min(max(float(frac or 0.0), 0.0), 1.0)

    def text(self) -> str:
        p, m = self.progress, self.metrics
        ep, eps = p.get("epoch"), p.get("epochs")
        step, total = p.get("step"), p.get("total_steps")
        frac = self._fraction()
        width = 24
        fill = int(round(frac * width))
        parts = []
        if eps:
            # epochs are 0-based in progress and events; people count from 1 (cli_util.epoch_of)
            started = self.status != "queued" or bool(step)
            parts.append(
                f"epoch {min(int(ep or 0) + 1, int(eps))}/{eps}" if started else f"epoch —/{eps}"
            )
        if total:
            parts.append(f"step {int(step or 0)}/{total}")
        parts.append(f"[{'#' * fill}{'.' * (width - fill)}] {frac * 100:3.0f}%")
        for key, label, fmt in (
            ("train_loss", "loss", ".4f"),
            ("val_acc", "val_acc", ".4f"),
            ("lr", "lr", ".3g"),
        ):
            if isinstance(m.get(key), int | float):
                parts.append(f"{label} {format(m[key], fmt)}")
        eta = p.get("eta_seconds")
        if not isinstance(eta, int | float) and self._t0 is not None and 0 < frac < 1:
            eta = (time.monotonic() - self._t0) * (1 - frac) / frac
        if isinstance(eta, int | float) and frac < 1:
            parts.append(f"ETA {_duration(eta)}")
        return "  ".join(parts)

    def draw(self) -> None:
        if self.tty:
            line = self.text()[:200]
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
            self._drawn = True
        elif self._epoch_event:
            ep = self.progress.get("epoch")
            self._epoch_event = False
            if ep != self._last_epoch:
                self._last_epoch = ep
                self._line(self.text())

    def _line(self, text: str) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, job: dict[str, Any]) -> int:
        self.update_job(job)
        if self.tty:
            self.draw()
        elif job.get("status") == "succeeded" and self.progress.get("epoch") != self._last_epoch:
            self._line(self.text())
        self._line(_outcome_line(job))
        return _exit_for(job)


def _outcome_line(job: dict[str, Any]) -> str:
    status = job.get("status")
    best = job.get("best") or {}
    m = job.get("metrics") or {}
    if status == "succeeded":
        bits = [f"job {job.get('id')} succeeded"]
        if isinstance(best.get("val_acc"), int | float):
            bits.append(f"best val_acc {best['val_acc']:.4f} (epoch {_ep(best.get('epoch'))})")
        if isinstance(m.get("val_loss"), int | float):
            bits.append(f"final val_loss {m['val_loss']:.4f}")
        lr_range = (job.get("result") or {}).get("lr_range") or {}
        if isinstance(lr_range.get("suggested_lr"), int | float):
            bits.append(f"suggested lr {lr_range['suggested_lr']:.3g} ({lr_range.get('rule', '')})")
        return ", ".join(bits)
    if status == "failed":
        return f"job {job.get('id')} {error_text('failed', job.get('error') or {})}"
    return f"job {job.get('id')} {status}"


def _exit_for(job: dict[str, Any]) -> int:
    return {"succeeded": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(
        job.get("status") or "", EXIT_FAILED
    )


def watch_job(client: Client, job_id: str, poll: float = 1.0, outage_s: float = 60.0) -> int:
    """Show live progress from the event stream until the job is terminal.

    A stream that ends early (API restart, proxy timeout) is resumed after the last
    event id; an API that is briefly unreachable is retried for `outage_s`; an API
    without the events route is polled instead.
    """
    bar = Progress()
    job = client.get(job_id)
    bar.update_job(job)
    last_id: str | None = None
    down_since: float | None = None
    streaming = True
    while job.get("status") not in TERMINAL:
        try:
            if streaming:
                n = 0
                for ev in client.events(job_id, last_event_id=last_id):
                    n += 1
                    last_id = ev.id or last_id
                    down_since = None
                    bar.feed(ev.type, ev.data)
                    if bar.status in TERMINAL:
                        break
                if n == 0:
                    time.sleep(poll)  # an empty stream must not become a busy loop
            else:
                bar.update_job(job)
                bar.draw()
                time.sleep(poll)
            job = client.get(job_id)
            down_since = None
        except ConnectionError:
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > outage_s:
                raise
            time.sleep(1.0)
        except ApiError as e:
            if not streaming or e.status not in (404, 405, 501):
                raise
            streaming = False  # no events route: poll the job record
    return bar.finish(job)
