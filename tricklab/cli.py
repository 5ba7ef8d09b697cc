"""`tricklab`: submit, watch, list, plot and compare training jobs from a shell.

Talks to $TRICKLAB_URL (default http://127.0.0.1:8000) with $TRICKLAB_API_KEY.
No torch and no matplotlib at import time: `tricklab --help` must be instant.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tricklab.client import TERMINAL, ApiError, Client, ConnectionError, jobs_of

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
EPILOG = """exit codes:
  0    success (for --watch / watch: the job succeeded)
  1    the job failed, or the API answered with an error, or it could not be reached
  2    invalid spec or arguments (checked locally, or a 4xx validation error from the API)
  130  the job was cancelled (or you pressed Ctrl-C)

environment: TRICKLAB_URL (default http://127.0.0.1:8000), TRICKLAB_API_KEY."""


class UsageError(Exception):
    """A problem with the user's input found before any request; exit 2."""


# ---------------------------------------------------------------------- helpers


def _out(*a: Any) -> None:
    print(*a, flush=True)


def load_file(path: str) -> Any:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except ValueError as e:  # json.JSONDecodeError and yaml.YAMLError's line info
        raise UsageError(f"{path} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}") from None
    except Exception as e:  # yaml.YAMLError does not subclass ValueError
        msg = " ".join(str(e).split())
        raise UsageError(f"{path} is not valid YAML: {msg}") from None


def _one_line_errors(exc: Exception) -> str:
    from tricks.spec import validation_errors

    parts = []
    for e in validation_errors(exc):  # type: ignore[arg-type]
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


def validate_spec(raw: Any, source: str) -> dict[str, Any]:
    """Validate a job spec locally (JobSpec, plus the dataset checks for built-ins)."""
    from pydantic import ValidationError

    from tricks.catalog import builtin_meta
    from tricks.spec import JobSpec, SpecError, check_against_dataset

    if not isinstance(raw, dict):
        raise UsageError(f"invalid spec {source}: expected a JSON/YAML object at the top level")
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as e:
        raise UsageError(f"invalid spec {source}: {_one_line_errors(e)}") from None
    meta = builtin_meta(spec.data.dataset, spec.data.val_fraction)
    if meta is not None:
        try:
            check_against_dataset(spec, meta)
        except SpecError as e:
            raise UsageError(f"invalid spec {source}: {e}") from None
    return raw


def _age(ts: str | None) -> str:
    if not ts:
        return "-"
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    return _duration((datetime.now(UTC) - t).total_seconds()) + " ago"


def _duration(s: float | None) -> str:
    if s is None or not math.isfinite(s) or s < 0:
        return "-"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def _num(v: Any, fmt: str = ".4g") -> str:
    return format(v, fmt) if isinstance(v, int | float) and not isinstance(v, bool) else "-"


def _ep(epoch: Any) -> str:
    """Epochs are 0-based in the API; people (and the progress bar) count from 1."""
    return str(epoch + 1) if isinstance(epoch, int) else "-"


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        _out("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


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
            # epochs are 0-based in progress and events; people count from 1
            parts.append(f"epoch {min(int(ep or 0) + 1, int(eps))}/{eps}")
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
        err = job.get("error") or {}
        if isinstance(err, dict):
            what = f"{err.get('type') or 'error'}: {err.get('message') or ''}".strip(": ")
        else:
            what = str(err)
        return f"job {job.get('id')} failed: {' '.join(what.split())}"
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


# --------------------------------------------------------------------- commands


def cmd_submit(c: Client, a: argparse.Namespace) -> int:
    raw = load_file(a.spec)
    if a.dataset and isinstance(raw, dict):
        raw["data"] = {**(raw.get("data") or {}), "dataset": a.dataset}
    spec = validate_spec(raw, a.spec)
    if a.name:
        spec["name"] = a.name
    elif not spec.get("name"):
        spec["name"] = Path(a.spec).stem
    job = c.submit(spec, idempotency_key=a.idempotency_key)
    _out(job["id"])
    if a.watch:
        return watch_job(c, job["id"])
    return EXIT_OK


def cmd_watch(c: Client, a: argparse.Namespace) -> int:
    return watch_job(c, a.id)


def cmd_ls(c: Client, a: argparse.Namespace) -> int:
    jobs = list(c.iter_jobs(status=a.status, limit=a.limit, page_size=min(a.limit, 200)))
    rows = []
    for j in jobs:
        p = j.get("progress") or {}
        best = j.get("best") or {}
        frac = p.get("fraction")
        if j.get("status") == "succeeded":
            frac = 1.0
        epoch = f"{_ep(p.get('epoch'))}/{p.get('epochs', '-')}" if p else "-"
        rows.append(
            [
                j.get("id", "?"),
                (j.get("name") or "")[:32],
                j.get("status", "?"),
                f"{frac * 100:.0f}%" if isinstance(frac, int | float) else "-",
                epoch,
                _num(best.get("val_acc"), ".4f"),
                _age(j.get("created_at")),
            ]
        )
    if not rows:
        _out("no jobs" + (f" with status {a.status}" if a.status else ""))
        return EXIT_OK
    _table(rows, ["ID", "NAME", "STATUS", "PROGRESS", "EPOCH", "BEST VAL_ACC", "AGE"])
    return EXIT_OK


def cmd_status(c: Client, a: argparse.Namespace) -> int:
    j = c.get(a.id)
    if a.json:
        _out(json.dumps(j, indent=2))
        return EXIT_OK
    p = j.get("progress") or {}
    spec = j.get("spec") or {}
    sched = spec.get("schedule") or {}
    decay = (sched.get("decay") or {}).get("kind", "cosine")
    warm = sched.get("warmup")
    opt = spec.get("optimizer") or {}
    _out(f"{j.get('id')}  {j.get('name') or ''}".rstrip())
    _out(f"  status     {j.get('status')} (attempts {j.get('attempts', 0)})")
    _out(
        f"  model      {(spec.get('model') or {}).get('arch', 'mlp')} on "
        f"{(spec.get('data') or {}).get('dataset', '?')}, {opt.get('name', 'sgd')} lr {opt.get('lr', '-')}, "
        f"{'warm-up + ' if warm else ''}{decay}"
    )
    if p:
        _out(
            f"  progress   epoch {_ep(p.get('epoch'))}/{p.get('epochs', '-')}, step "
            f"{p.get('step', '-')}/{p.get('total_steps', '-')} ({_num((p.get('fraction') or 0) * 100, '.0f')}%), "
            f"ETA {_duration(p.get('eta_seconds'))}, {_num(p.get('samples_per_second'), '.0f')} samples/s"
        )
    _out(f"  created    {j.get('created_at') or '-'} ({_age(j.get('created_at'))})")
    if j.get("started_at"):
        _out(f"  started    {j['started_at']}")
    if j.get("finished_at"):
        _out(f"  finished   {j['finished_at']}")
    m = j.get("metrics") or {}
    if m:
        _out("  metrics    " + ", ".join(f"{k} {_num(v)}" for k, v in sorted(m.items())))
    best = j.get("best") or {}
    if best.get("val_acc") is not None:
        _out(
            f"  best       val_acc {_num(best['val_acc'], '.4f')} at epoch {_ep(best.get('epoch'))}"
        )
    lr_range = (j.get("result") or {}).get("lr_range") or {}
    if isinstance(lr_range.get("suggested_lr"), int | float):
        _out(
            f"  lr range   suggested lr {lr_range['suggested_lr']:.3g} ({lr_range.get('rule', '')})"
        )
    if j.get("error"):
        _out(f"  error      {_outcome_line(j).split(': ', 1)[-1]}")
    return EXIT_OK


def cmd_cancel(c: Client, a: argparse.Namespace) -> int:
    res = c.cancel(a.id)
    _out(f"{a.id}: {res.get('status', 'cancel requested')}")
    return EXIT_OK


def cmd_curves(c: Client, a: argparse.Namespace) -> int:
    metrics = [m for m in (a.metrics or "").split(",") if m] or None
    cur = c.curves(a.id, metrics=metrics, max_points=a.max_points)
    series = cur.get("series") or {}
    if a.csv:
        fh = sys.stdout if a.csv == "-" else open(a.csv, "w", newline="")  # noqa: SIM115
        try:
            w = csv.writer(fh)
            w.writerow(["metric", "step", "value"])
            for name, s in series.items():
                for step, value in zip(s.get("step", []), s.get("value", []), strict=False):
                    w.writerow([name, step, value])
        finally:
            if fh is not sys.stdout:
                fh.close()
        if a.csv != "-":
            _out(f"wrote {a.csv}")
    if a.png:
        from tricklab.plots import plot_curves

        job = c.get(a.id)
        plot_curves(cur, a.png, title=job.get("name") or a.id)
        _out(f"wrote {a.png}")
    if not a.csv and not a.png:
        if not series:
            _out("no points yet")
        rows = []
        for name, s in series.items():
            vals = [v for v in s.get("value", []) if isinstance(v, int | float)]
            rows.append(
                [
                    name,
                    str(len(vals)),
                    _num(vals[-1] if vals else None),
                    _num(min(vals) if vals else None),
                    _num(max(vals) if vals else None),
                ]
            )
        if rows:
            _table(rows, ["METRIC", "POINTS", "LAST", "MIN", "MAX"])
    return EXIT_OK


def cmd_lr(c: Client, a: argparse.Namespace) -> int:
    res = c.lr(a.id)
    if a.png:
        from tricklab.plots import plot_lr

        name = c.get(a.id).get("name") or a.id
        plot_lr(res.get("planned"), res.get("actual"), a.png, log_y=a.log, title=f"lr: {name}")
        _out(f"wrote {a.png}")
    else:
        _out(json.dumps(res))
    return EXIT_OK


def _schedule_args(raw: Any, a: argparse.Namespace) -> tuple[float, int, int, dict[str, Any]]:
    """(lr, epochs, steps_per_epoch, schedule) from a ScheduleSpec file or a whole JobSpec."""
    from pydantic import ValidationError

    from tricks.catalog import builtin_meta
    from tricks.spec import JobSpec, ScheduleSpec, steps_per_epoch

    if not isinstance(raw, dict):
        raise UsageError(f"{a.schedule}: expected a JSON/YAML object")
    if "data" in raw or "training" in raw or "optimizer" in raw:
        validate_spec(raw, a.schedule)
        spec = JobSpec.model_validate(raw)
        lr = a.lr if a.lr is not None else spec.optimizer.lr
        epochs = a.epochs if a.epochs is not None else spec.training.epochs
        spe = a.steps_per_epoch
        if spe is None:
            n_train = a.n_train
            if n_train is None:
                meta = builtin_meta(spec.data.dataset, spec.data.val_fraction)
                if meta is None:
                    raise UsageError(
                        f"dataset {spec.data.dataset!r} is not built in: give --steps-per-epoch or --n-train"
                    )
                n_train = meta.n_train
            spe = steps_per_epoch(n_train, spec.training.batch_size)
        return lr, epochs, spe, spec.schedule.model_dump(mode="json")
    try:
        sched = ScheduleSpec.model_validate(raw)
    except ValidationError as e:
        raise UsageError(f"invalid schedule {a.schedule}: {_one_line_errors(e)}") from None
    missing = [
        f"--{n.replace('_', '-')}"
        for n in ("lr", "epochs", "steps_per_epoch")
        if getattr(a, n) is None
    ]
    if missing:
        raise UsageError(f"{a.schedule} is a schedule only: give {', '.join(missing)}")
    return a.lr, a.epochs, a.steps_per_epoch, sched.model_dump(mode="json")


def cmd_preview(c: Client, a: argparse.Namespace) -> int:
    lr, epochs, spe, sched = _schedule_args(load_file(a.schedule), a)
    try:
        res = c.preview(lr, epochs, spe, sched)
    except ApiError as e:
        if e.status not in (0, 404, 405):
            raise
        # No API (or no preview route yet): the schedule math is pure, compute it here.
        from tricks.schedules import preview
        from tricks.spec import ScheduleSpec

        print(f"note: API unavailable ({e.code}); computed locally", file=sys.stderr)
        res = preview(
            lr=lr, epochs=epochs, steps_per_epoch=spe, schedule=ScheduleSpec.model_validate(sched)
        )
    steps, lrs = list(res["step"]), list(res["lr"])
    total = res.get("total_steps", len(steps))
    if a.png:
        from tricklab.plots import plot_lr

        kind = sched.get("decay", {}).get("kind", "cosine")
        title = f"{'warm-up + ' if sched.get('warmup') else ''}{kind}: lr {lr:g}, {epochs} epochs × {spe} steps"
        plot_lr({"step": steps, "lr": lrs}, None, a.png, log_y=a.log, title=title)
        _out(f"wrote {a.png}")
    _out(f"total_steps {total} ({epochs} epochs × {spe} steps per epoch)")
    if lrs:
        picks = sorted({0, len(lrs) // 4, len(lrs) // 2, 3 * len(lrs) // 4, len(lrs) - 1})
        _out("  " + ", ".join(f"step {steps[i]}: {lrs[i]:.4g}" for i in picks))
        _out(f"  min {min(lrs):.4g}, max {max(lrs):.4g}")
    return EXIT_OK


def _compare_x(job: dict[str, Any], steps: list[int], x: str) -> list[float]:
    if x == "step":
        return list(steps)
    p = job.get("progress") or {}
    total, epochs = p.get("total_steps"), p.get("epochs")
    if not total or not epochs:
        raise UsageError(f"job {job.get('id')} has no progress yet: compare with --x step")
    if x == "epoch":
        spe = total / epochs
        return [(s + 1) / spe for s in steps]  # per-epoch points land on whole epochs
    return [(s + 1) / total for s in steps]


def cmd_compare(c: Client, a: argparse.Namespace) -> int:
    runs, rows = [], []
    for job_id in a.ids:
        job = c.get(job_id)
        s = (c.curves(job_id, metrics=[a.metric], max_points=a.max_points).get("series") or {}).get(
            a.metric
        ) or {"step": [], "value": []}
        label = job.get("name") or job_id
        xs = _compare_x(job, s.get("step", []), a.x) if s.get("step") else []
        runs.append((label, {"x": xs, "value": s.get("value", [])}))
        vals = [v for v in s.get("value", []) if isinstance(v, int | float)]
        best = (min if "loss" in a.metric or "ece" in a.metric else max)(vals) if vals else None
        rows.append(
            [
                job_id,
                label[:32],
                job.get("status", "?"),
                _num(vals[-1] if vals else None),
                _num(best),
            ]
        )
    _table(rows, ["ID", "NAME", "STATUS", f"LAST {a.metric}", f"BEST {a.metric}"])
    if a.png:
        from tricklab.plots import plot_compare

        plot_compare(runs, a.metric, a.x, a.png)
        _out(f"wrote {a.png}")
    return EXIT_OK


def cmd_upload(c: Client, a: argparse.Namespace) -> int:
    if not Path(a.file).is_file():
        raise UsageError(f"no such file: {a.file}")
    ds = c.upload_dataset(a.file, name=a.name)
    _out(ds.get("id", json.dumps(ds)))
    return EXIT_OK


def cmd_datasets(c: Client, a: argparse.Namespace) -> int:
    res = c.datasets()
    items = res if isinstance(res, list) else jobs_of(res) or res.get("datasets", [])
    rows = [
        [
            d.get("id", "?"),
            d.get("kind", "?"),
            "×".join(str(n) for n in d.get("input_shape") or []) or "-",
            str(d.get("num_classes", "-")),
            f"{d.get('n_train', '-')}/{d.get('n_val', '-')}",
            "built-in" if d.get("builtin") else "upload",
            (d.get("name") or "")[:50],
        ]
        for d in items
    ]
    _table(rows, ["ID", "KIND", "SHAPE", "CLASSES", "TRAIN/VAL", "SOURCE", "DESCRIPTION"])
    return EXIT_OK


def cmd_model(c: Client, a: argparse.Namespace) -> int:
    path = c.model(a.id, a.output or f"{a.id}.safetensors")
    _out(f"wrote {path}")
    return EXIT_OK


# ----------------------------------------------------------- process launchers


def _passthrough(name: str, rest: list[str]) -> int:
    """`up`, `worker`, `keys`: hand the remaining arguments to the module that owns them."""
    try:
        if name == "up":
            from tricklab.up import main as run
        elif name == "worker":
            from worker.launch import main as run
        else:
            from tricklab.keys import main as run
    except ImportError as e:
        what = {"up": "tricklab.up", "worker": "worker.launch", "keys": "tricklab.keys"}[name]
        print(
            f"tricklab {name}: not available yet ({what} cannot be imported: {e})", file=sys.stderr
        )
        return EXIT_FAILED
    rc = run(rest)
    return rc if isinstance(rc, int) else EXIT_OK


PASSTHROUGH = {
    "up": "start embedded redis + worker + API (what `make up` runs); options go to tricklab.up",
    "worker": "start a worker process: tricklab worker --gpus 0,1 ...; options go to worker.launch",
    "keys": "manage API keys: tricklab keys create NAME",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tricklab",
        description="Train with learning-rate schedules and regularization tricks, as a service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", help="API base URL (default $TRICKLAB_URL or http://127.0.0.1:8000)")
    p.add_argument("--api-key", help="API key (default $TRICKLAB_API_KEY)")
    # --url/--api-key also after the command; SUPPRESS keeps a missing one from resetting the other
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--api-key", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    for name, text in PASSTHROUGH.items():
        sub.add_parser(name, help=text, add_help=False)

    def add(name: str, fn, text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name,
            help=text,
            description=text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        sp.set_defaults(fn=fn)
        return sp

    s = add("submit", cmd_submit, "submit a job spec (.json or .yaml); prints the job id")
    s.add_argument("spec", help="job spec file (see examples/)")
    s.add_argument("--watch", action="store_true", help="show live progress; exit with the outcome")
    s.add_argument("--name", help="job name (default: the spec's name, else the file name)")
    s.add_argument(
        "--dataset", help="override data.dataset (e.g. the id `tricklab upload` printed)"
    )
    s.add_argument("--idempotency-key", help="resubmitting with the same key returns the same job")

    s = add("watch", cmd_watch, "live progress of an existing job; exits with its outcome")
    s.add_argument("id")

    s = add("ls", cmd_ls, "list jobs, newest first")
    s.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    s.add_argument("--limit", type=int, default=20)

    s = add("status", cmd_status, "summary and latest metrics of a job")
    s.add_argument("id")
    s.add_argument("--json", action="store_true", help="print the raw job record")

    s = add("cancel", cmd_cancel, "cancel a queued or running job")
    s.add_argument("id")

    s = add("curves", cmd_curves, "metric curves of a job: a summary, a CSV or a PNG")
    s.add_argument("id")
    s.add_argument("--metrics", help="comma-separated, e.g. train_loss,val_acc (default: all)")
    s.add_argument("--csv", metavar="OUT.csv", help="write metric,step,value rows ('-': stdout)")
    s.add_argument("--png", metavar="OUT.png", help="plot loss/accuracy panels")
    s.add_argument("--max-points", type=int, help="downsample each series to about this many")

    s = add("lr", cmd_lr, "planned vs actual learning rate of a job")
    s.add_argument("id")
    s.add_argument("--png", metavar="OUT.png")
    s.add_argument("--log", action="store_true", help="log-scale y axis")

    s = add(
        "preview",
        cmd_preview,
        "the lr at every step of a schedule, without training "
        "(a ScheduleSpec file with --lr/--epochs/--steps-per-epoch, or a whole job spec)",
    )
    s.add_argument("schedule", help="schedule.json (ScheduleSpec) or a job spec")
    s.add_argument("--lr", type=float, help="peak lr (default: the job spec's optimizer.lr)")
    s.add_argument("--epochs", type=int, help="default: the job spec's training.epochs")
    s.add_argument("--steps-per-epoch", type=int, help="default: n_train // batch_size")
    s.add_argument("--n-train", type=int, help="training samples, for uploaded datasets")
    s.add_argument("--png", metavar="OUT.png")
    s.add_argument("--log", action="store_true", help="log-scale y axis")

    s = add("compare", cmd_compare, "overlay one metric of several jobs")
    s.add_argument("ids", nargs="+", metavar="ID")
    s.add_argument("--metric", default="val_acc")
    s.add_argument("--x", choices=["step", "epoch", "fraction"], default="step")
    s.add_argument("--png", metavar="OUT.png")
    s.add_argument("--max-points", type=int)

    s = add("upload", cmd_upload, "upload a dataset (.npz with x, y[, x_val, y_val] or .csv)")
    s.add_argument("file")
    s.add_argument("--name")

    add("datasets", cmd_datasets, "list built-in and uploaded datasets")

    from tricklab.cli_sweeps import add_sweep_commands  # sweep, sweep-report, sweep-cancel

    add_sweep_commands(add)
    s = add("model", cmd_model, "download a succeeded job's weights (safetensors)")
    s.add_argument("id")
    s.add_argument("-o", "--output", help="default: ID.safetensors")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Launchers take their own options, so they bypass argparse (which would reject them).
    if argv and argv[0] in PASSTHROUGH:
        return _passthrough(argv[0], argv[1:])
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with Client(url=a.url, api_key=a.api_key) as c:
            rc = a.fn(c, a)
    except UsageError as e:
        print(f"tricklab {a.cmd}: {e}", file=sys.stderr)
        rc = EXIT_USAGE
    except ApiError as e:
        print(str(e), file=sys.stderr)
        rc = EXIT_USAGE if e.status in (400, 422) or e.code == "validation_error" else EXIT_FAILED
    except TimeoutError as e:
        print(f"tricklab {a.cmd}: {e}", file=sys.stderr)
        rc = EXIT_FAILED
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        rc = EXIT_CANCELLED
    return rc


if __name__ == "__main__":
    sys.exit(main())
