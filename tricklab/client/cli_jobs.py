"""Job commands: `submit`, `watch`, `ls`, `status`, `cancel`, `upload`, `datasets`, `model`,
`checkpoints`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tricklab.client.cli_util import (
    EXIT_OK,
    UsageError,
    _age,
    _duration,
    _ep,
    _num,
    _out,
    _table,
    load_file,
    validate_spec,
)
from tricklab.client.http import Client, jobs_of
from tricklab.client.watch import Progress, _outcome_line, watch_job  # noqa: F401 - Progress: tests import it from here


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


def cmd_checkpoints(c: Client, a: argparse.Namespace) -> int:
    """List a job's checkpoints, or download one with --epoch."""
    if a.epoch is not None:
        path = c.checkpoint(a.id, a.epoch, a.output or f"{a.id}-epoch-{a.epoch}.pt")
        _out(f"wrote {path} (load it with torch.load(path, weights_only=True))")
        return EXIT_OK
    res = c.checkpoints(a.id)
    rows = [
        [str(d["epoch"]), str(d["step"]), _size(d["bytes"]), d.get("created") or "-"]
        for d in res.get("data") or []
    ]
    if not rows:
        _out(f"{a.id} has no checkpoints yet (one is written at the end of each epoch)")
        return EXIT_OK
    _table(rows, ["EPOCH", "STEP", "SIZE", "CREATED"])
    _out(f"download one: tricklab checkpoints {a.id} --epoch N  ({res.get('format', '')})")
    return EXIT_OK


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def add_checkpoint_commands(add) -> None:
    """`tricklab checkpoints ID [--epoch N [-o OUT]]`."""
    s = add(
        "checkpoints",
        cmd_checkpoints,
        "list a job's end-of-epoch checkpoints (any status), or download one with --epoch",
    )
    s.add_argument("id")
    s.add_argument("--epoch", type=int, help="download the checkpoint after this many epochs")
    s.add_argument("-o", "--output", help="default: ID-epoch-N.pt")
