"""Job commands: `submit`, `watch`, `ls` (`jobs`), `tag`, `status`, `cancel`, `rm`,
`datasets`, `model`, `checkpoints` (`upload` is tricklab/client/cli_upload.py)."""

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
    epoch_of,
    error_text,
    load_file,
    train_val,
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
    filters = {
        "sort": getattr(a, "sort", None),
        "tag": getattr(a, "tag", None),
        "q": getattr(a, "q", None),
        "sweep_id": getattr(a, "sweep", None),
    }
    jobs = list(c.iter_jobs(status=a.status, limit=a.limit, page_size=min(a.limit, 200), **filters))
    cols: list[str] = getattr(a, "col", None) or []
    show_tags = any(j.get("tags") for j in jobs)
    rows = []
    for j in jobs:
        p = j.get("progress") or {}
        best = j.get("best") or {}
        frac = p.get("fraction")
        if j.get("status") == "succeeded":
            frac = 1.0
        epoch = epoch_of(p, j.get("status"))
        rows.append(
            [
                j.get("id", "?"),
                (j.get("name") or "")[:32],
                j.get("status", "?"),
                f"{frac * 100:.0f}%" if isinstance(frac, int | float) else "-",
                epoch,
                _num(best.get("val_acc"), ".4f"),
                *[_cell(path_value(j, col)) for col in cols],
                *([",".join(j.get("tags") or [])] if show_tags else []),
                _age(j.get("created_at")),
            ]
        )
    if not rows:
        _out("no jobs" + (f" with status {a.status}" if a.status else ""))
        return EXIT_OK
    header = ["ID", "NAME", "STATUS", "PROGRESS", "EPOCH", "BEST VAL_ACC"]
    header += [col.upper() for col in cols] + (["TAGS"] if show_tags else []) + ["AGE"]
    _table(rows, header)
    return EXIT_OK


def path_value(job: dict, path: str) -> object:
    """The value at a dotted path of a GET /jobs row (spec.optimizer.lr, metrics.val_loss);
    a bare spec path (optimizer.lr) is read under spec."""
    node: object = job
    parts = path.split(".")
    if parts[0] not in job:
        node = job.get("spec") or {}
    for part in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def cmd_tag(c: Client, a: argparse.Namespace) -> int:
    """Add tags to a job (and remove the --rm ones); prints the job's tags."""
    if not a.tags and not a.rm and a.notes is None:
        raise UsageError("name a TAG to add, --rm TAG to remove, or --notes TEXT")
    job = c.get(a.id)
    tags = [t for t in job.get("tags") or [] if t not in set(a.rm or [])]
    tags += [t for t in a.tags if t not in tags]
    res = c.patch_job(a.id, tags=tags if (a.tags or a.rm) else None, notes=a.notes)
    _out(f"{a.id}: {', '.join(res.get('tags') or []) or '(no tags)'}")
    return EXIT_OK


def add_list_options(s: argparse.ArgumentParser) -> None:
    """`ls` / `jobs` options beyond --status and --limit: the runs table's sort and filters."""
    s.add_argument(
        "--sort",
        help="a field path, '-' first for descending (write it --sort=-best.val_acc): "
        "spec.optimizer.lr, metrics.val_loss, duration_s, created_at (default: newest first)",
    )
    s.add_argument("--tag", help="only jobs with this tag")
    s.add_argument("--q", help="only jobs whose name contains this (any case)")
    s.add_argument("--sweep", metavar="SWEEP_ID", help="only the children of this sweep")
    s.add_argument(
        "--col",
        action="append",
        metavar="PATH",
        help="add a column: a spec path (optimizer.lr) or a row field (metrics.val_loss); repeatable",
    )


def add_tag_command(add) -> None:
    """`tricklab tag ID TAG... [--rm TAG] [--notes TEXT]`."""
    s = add("tag", cmd_tag, "add tags to a job (--rm TAG removes one); prints its tags")
    s.add_argument("id")
    s.add_argument("tags", nargs="*", metavar="TAG", help="1-64 characters, no commas")
    s.add_argument("--rm", action="append", metavar="TAG", help="remove this tag; repeatable")
    s.add_argument("--notes", help="replace the job's notes with this text")


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
    lr_what = f"lr {opt.get('lr', '-')}, {'warm-up + ' if warm else ''}{decay}"
    if spec.get("task") == "lr_range_test":  # no schedule: the lr sweeps the range
        rng = spec.get("lr_range") or {}
        lr_what = (
            f"lr range test {_num(rng.get('min_lr', 1e-6), '.3g')} → "
            f"{_num(rng.get('max_lr', 10.0), '.3g')} (exponential, {rng.get('steps', 100)} steps)"
        )
    _out(f"{j.get('id')}  {j.get('name') or ''}".rstrip())
    _out(f"  status     {j.get('status')} (attempts {j.get('attempts', 0)})")
    _out(
        f"  model      {(spec.get('model') or {}).get('arch', 'mlp')} on "
        f"{(spec.get('data') or {}).get('dataset', '?')}, {opt.get('name', 'sgd')} {lr_what}"
    )
    if p:
        _out(
            f"  progress   epoch {epoch_of(p, j.get('status'))}, step "
            f"{p.get('step', '-')}/{p.get('total_steps', '-')} ({_num((p.get('fraction') or 0) * 100, '.0f')}%), "
            f"ETA {_duration(p.get('eta_seconds'))}, {_num(p.get('samples_per_second'), '.0f')} samples/s"
        )
    stop_reason = (j.get("result") or {}).get("stop_reason")
    if stop_reason:  # ended before its planned steps: say why ("diverged", "early_stopping")
        _out(f"  stopped    {stop_reason} at step {(j.get('result') or {}).get('steps', '-')}")
    if j.get("tags"):
        _out(f"  tags       {', '.join(j['tags'])}")
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
        _out(f"  error      {error_text(j.get('status'), j['error'])}")
    return EXIT_OK


def cmd_cancel(c: Client, a: argparse.Namespace) -> int:
    """Say what the cancel did: a queued job is gone at once, a running one stops later."""
    res = c.cancel(a.id)
    _out(cancel_line(a.id, res))
    return EXIT_OK


def cancel_line(job_id: str, res: dict) -> str:
    """The POST /jobs/{id}/cancel answer in words (status is what the job is now)."""
    if res.get("status") == "cancelled":
        return f"cancelled: {job_id} was queued; it will not start"
    if res.get("status") == "running":
        return (
            f"cancel requested: {job_id} was running; it stops at its next step "
            f"(use `tricklab watch {job_id}` to follow)"
        )
    return f"cancel requested: {job_id} is {res.get('status', 'unknown')}"


def cmd_rm(c: Client, a: argparse.Namespace) -> int:
    """Delete jobs (j...) or sweeps (s...) and everything they stored."""
    for ident in a.ids:
        gone = c.delete_sweep(ident) if ident.startswith("s") else c.delete_job(ident)
        _out(f"{ident}: {'deleted' if gone else 'cancelled; deleted once it stops'}")
    return EXIT_OK


def add_rm_command(add) -> None:
    """`tricklab rm ID...`: DELETE /jobs/{id} (or /sweeps/{id} for a sweep id)."""
    s = add("rm", cmd_rm, "delete jobs or sweeps and all they stored (running ones are cancelled)")
    s.add_argument("ids", nargs="+", metavar="ID", help="a job id (j...) or a sweep id (s...)")


def cmd_datasets(c: Client, a: argparse.Namespace) -> int:
    res = c.datasets()
    items = res if isinstance(res, list) else jobs_of(res) or res.get("datasets", [])
    rows = [
        [
            d.get("id", "?"),
            d.get("kind", "?"),
            "×".join(str(n) for n in d.get("input_shape") or []) or "-",
            str(d.get("num_classes", "-")),
            "/".join(str("-" if n is None else n) for n in train_val(d)),
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
