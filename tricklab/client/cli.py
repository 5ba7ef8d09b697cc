"""`tricklab`: submit, watch, list, plot and compare training jobs from a shell.

Talks to $TRICKLAB_URL (default http://127.0.0.1:8000) with $TRICKLAB_API_KEY.
No torch and no matplotlib at import time: `tricklab --help` must be instant.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tricklab.client.cli_curves import cmd_compare, cmd_curves, cmd_lr, cmd_preview
from tricklab.client.cli_sweeps import add_sweep_commands  # sweep, sweep-report, sweep-cancel
from tricklab.client.cli_util import (
    EPILOG,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
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
from tricklab.client.http import ApiError, Client, jobs_of
from tricklab.client.watch import Progress, _outcome_line, watch_job  # noqa: F401 - Progress: tests import it from here

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
    """`up`, `worker`, `keys`: hand the remaining arguments to the program that owns them.

    `worker` and `keys` are server-side programs: they run as their own process
    (`python -m MODULE`), so the client package never imports the server's.
    """
    if name == "up":
        from tricklab.client.up import main as run

        rc = run(rest)
        return rc if isinstance(rc, int) else EXIT_OK
    module = SERVER_PROGRAMS[name]
    try:
        return subprocess.call([sys.executable, "-m", module, *rest])
    except KeyboardInterrupt:  # the child got the same SIGINT and stops on its own
        return EXIT_CANCELLED


SERVER_PROGRAMS = {"worker": "worker.launch", "keys": "tricklab.server.apikeys"}


PASSTHROUGH = {
    "up": "start embedded redis + worker + API (what `make up` runs); options go to tricklab.client.up",
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
