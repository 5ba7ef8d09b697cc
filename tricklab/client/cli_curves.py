"""Curve commands: `curves`, `lr`, `preview` and `compare` (CSV or matplotlib PNGs)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from tricklab.client.cli_util import (
    EXIT_OK,
    UsageError,
    _num,
    _one_line_errors,
    _out,
    _table,
    load_file,
    validate_spec,
)
from tricklab.client.http import ApiError, Client


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
        from tricklab.client.plots import plot_curves

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
        from tricklab.client.plots import plot_lr

        name = c.get(a.id).get("name") or a.id
        plot_lr(res.get("planned"), res.get("actual"), a.png, log_y=a.log, title=f"lr: {name}")
        _out(f"wrote {a.png}")
    else:
        _out(json.dumps(res))
    return EXIT_OK


def _schedule_args(
    raw: Any, a: argparse.Namespace, c: Client
) -> tuple[float, int, int, dict[str, Any], str]:
    """(lr, epochs, steps_per_epoch, schedule, where the steps come from) from a
    ScheduleSpec file or a whole JobSpec, with --dataset/--n-train/--batch-size on top."""
    from pydantic import ValidationError

    from tricks.spec import DataSpec, JobSpec, ScheduleSpec, TrainingSpec, steps_per_epoch

    if not isinstance(raw, dict):
        raise UsageError(f"{a.schedule}: expected a JSON/YAML object")
    dataset, val_fraction = a.dataset, DataSpec.model_fields["val_fraction"].default
    batch = TrainingSpec.model_fields["batch_size"].default
    if "data" in raw or "training" in raw or "optimizer" in raw:
        if dataset:
            raw = {**raw, "data": {**(raw.get("data") or {}), "dataset": dataset}}
        validate_spec(raw, a.schedule)
        spec = JobSpec.model_validate(raw)
        lr = a.lr if a.lr is not None else spec.optimizer.lr
        epochs = a.epochs if a.epochs is not None else spec.training.epochs
        dataset, val_fraction = spec.data.dataset, spec.data.val_fraction
        batch, sched = spec.training.batch_size, spec.schedule
    else:
        try:
            sched = ScheduleSpec.model_validate(raw)
        except ValidationError as e:
            raise UsageError(f"invalid schedule {a.schedule}: {_one_line_errors(e)}") from None
        need = ["lr", "epochs"] + ([] if dataset or a.n_train else ["steps_per_epoch"])
        missing = [f"--{n.replace('_', '-')}" for n in need if getattr(a, n) is None]
        if missing:
            hint = (
                " (or --dataset NAME instead of --steps-per-epoch)"
                if "--steps-per-epoch" in missing
                else ""
            )
            raise UsageError(f"{a.schedule} is a schedule only: give {', '.join(missing)}{hint}")
        lr, epochs = a.lr, a.epochs
    batch = a.batch_size or batch
    if a.steps_per_epoch is not None:
        return lr, epochs, a.steps_per_epoch, sched.model_dump(mode="json"), ""
    n_train = a.n_train if a.n_train is not None else _n_train(c, dataset, val_fraction)
    where = f"{n_train} training samples" + (f" of {dataset}" if a.n_train is None else "")
    spe = steps_per_epoch(n_train, batch)
    return lr, epochs, spe, sched.model_dump(mode="json"), f"{where} / batch {batch}"


def _n_train(c: Client, dataset: str, val_fraction: float) -> int:
    """The training split a job on `dataset` gets: built-ins from the catalog, uploads
    from GET /datasets/{id} (split by val_fraction unless they carry their own x_val)."""
    from tricks.catalog import builtin_meta
    from tricks.spec import split_sizes

    meta = builtin_meta(dataset, val_fraction)
    if meta is not None:
        return meta.n_train
    try:
        d = c.dataset(dataset)
    except ApiError as e:
        if e.status == 404:
            raise UsageError(
                f"dataset {dataset!r} is neither built in nor uploaded (tricklab datasets lists them)"
            ) from None
        if e.status == 0:
            raise UsageError(
                f"dataset {dataset!r} is not built in and the API is unreachable ({e}): "
                "give --n-train or --steps-per-epoch"
            ) from None
        raise
    n_train, n_val = int(d.get("n_train") or 0), int(d.get("n_val") or 0)
    own = d.get("own_val")
    if own is True or (own is None and n_val > 0):  # its own x_val: every job trains on x
        return n_train
    return split_sizes(n_train + n_val, val_fraction)[0]


def cmd_preview(c: Client, a: argparse.Namespace) -> int:
    lr, epochs, spe, sched, where = _schedule_args(load_file(a.schedule), a, c)
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
        from tricklab.client.plots import plot_lr

        kind = sched.get("decay", {}).get("kind", "cosine")
        title = f"{'warm-up + ' if sched.get('warmup') else ''}{kind}: lr {lr:g}, {epochs} epochs × {spe} steps"
        plot_lr({"step": steps, "lr": lrs}, None, a.png, log_y=a.log, title=title)
        _out(f"wrote {a.png}")
    per = f"{spe} steps per epoch" + (f": {where}" if where else "")
    _out(f"total_steps {total} ({epochs} epochs × {per})")
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
        from tricklab.client.plots import plot_compare

        plot_compare(runs, a.metric, a.x, a.png)
        _out(f"wrote {a.png}")
    return EXIT_OK
