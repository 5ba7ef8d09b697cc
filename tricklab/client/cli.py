"""`tricklab`: submit, watch, list, plot and compare training jobs from a shell.

Talks to $TRICKLAB_URL (default: the API of the `tricklab up` running in this checkout,
else http://127.0.0.1:8000) with $TRICKLAB_API_KEY.
No torch and no matplotlib at import time: `tricklab --help` must be instant.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from tricklab.client.cli_curves import cmd_compare, cmd_curves, cmd_lr, cmd_preview
from tricklab.client.cli_jobs import (
    add_checkpoint_commands,
    add_list_options,
    add_rm_command,
    add_tag_command,
    cmd_cancel,
    cmd_datasets,
    cmd_ls,
    cmd_model,
    cmd_status,
    cmd_submit,
    cmd_watch,
)
from tricklab.client.cli_searches import add_search_commands  # search, search-report, ...
from tricklab.client.cli_sweeps import add_sweep_commands  # sweep, sweep-report, sweep-cancel
from tricklab.client.cli_upload import add_upload_command
from tricklab.client.cli_util import (
    EPILOG,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_USAGE,
    UsageError,
)
from tricklab.client.http import ApiError, Client
from tricklab.client.watch import Progress, _outcome_line, watch_job  # noqa: F401 - Progress: tests import it from here
from tricklab.contract import JobStatus

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
        return subprocess.call([sys.executable, "-m", module, *rest], env=_stack_env())
    except KeyboardInterrupt:  # the child got the same SIGINT and stops on its own
        return EXIT_CANCELLED


SERVER_PROGRAMS = {"worker": "worker.launch", "keys": "tricklab.server.apikeys"}


def _stack_env() -> dict[str, str]:
    """The environment for `tricklab worker` / `tricklab keys`: when neither the environment
    nor .env names a Redis, the one of the stack `tricklab up` runs in this checkout
    (var/up.json), with its artifact dir and key prefix, so a key or a worker reaches it."""
    env = dict(os.environ)
    from tricklab.procs import find_stack
    from tricklab.settings import Settings

    given = Settings().model_fields_set
    stack = None if "redis_url" in given else find_stack()
    if stack:
        env["REDIS_URL"] = stack["redis_url"]
        if "artifact_dir" not in given and stack.get("artifact_dir"):
            env["ARTIFACT_DIR"] = stack["artifact_dir"]
        if "key_prefix" not in given and stack.get("key_prefix"):
            env["TRICKLAB_KEY_PREFIX"] = stack["key_prefix"]
        print(
            f"tricklab: using the stack `tricklab up` (pid {stack['pid']}) runs: Redis "
            f"{stack['redis_url']} (from {stack['stack_file']}; set REDIS_URL to choose another)",
            file=sys.stderr,
        )
    return env


def _default_url(url: str | None) -> str | None:
    """--url, else $TRICKLAB_URL, else the API of the stack `tricklab up` runs in this
    checkout, else None (the client's default)."""
    if url or os.environ.get("TRICKLAB_URL"):
        return url
    from tricklab.procs import find_stack

    stack = find_stack()
    return stack.get("api_url") if stack else None


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
    p.add_argument(
        "--url",
        help="API base URL (default $TRICKLAB_URL, else this checkout's `tricklab up` "
        "(var/up.json), else http://127.0.0.1:8000)",
    )
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

    for name, text in (
        ("ls", "list jobs, newest first (or --sort PATH), filtered by --status/--tag/--q/--sweep"),
        ("jobs", "the same as ls: the runs table"),
    ):
        s = add(name, cmd_ls, text)
        s.add_argument("--status", choices=[s.value for s in JobStatus])
        s.add_argument("--limit", type=int, default=20)
        add_list_options(s)
    add_tag_command(add)

    s = add("status", cmd_status, "summary and latest metrics of a job")
    s.add_argument("id")
    s.add_argument("--json", action="store_true", help="print the raw job record")

    s = add("cancel", cmd_cancel, "cancel a queued or running job")
    s.add_argument("id")
    add_rm_command(add)

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
    s.add_argument(
        "--dataset",
        metavar="NAME",
        help="take steps per epoch from this dataset's training split (a built-in or an "
        "uploaded id; overrides a job spec's data.dataset)",
    )
    s.add_argument("--batch-size", type=int, help="default: the job spec's training.batch_size")
    s.add_argument("--png", metavar="OUT.png")
    s.add_argument("--log", action="store_true", help="log-scale y axis")

    s = add("compare", cmd_compare, "overlay one metric of several jobs")
    s.add_argument("ids", nargs="+", metavar="ID")
    s.add_argument("--metric", default="val_acc")
    s.add_argument("--x", choices=["step", "epoch", "fraction"], default="step")
    s.add_argument("--png", metavar="OUT.png")
    s.add_argument("--max-points", type=int)

    add_upload_command(add)  # tus, resumable (tricklab/client/cli_upload.py)

    add("datasets", cmd_datasets, "list built-in and uploaded datasets")

    add_sweep_commands(add)
    add_search_commands(add)
    s = add("model", cmd_model, "download a succeeded job's weights (safetensors)")
    s.add_argument("id")
    s.add_argument("-o", "--output", help="default: ID.safetensors")
    add_checkpoint_commands(add)
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
        with Client(url=_default_url(a.url), api_key=a.api_key) as c:
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
    except BrokenPipeError:
        rc = _stdout_closed()
    return rc


def _stdout_closed() -> int:
    """The reader went away (`tricklab ls | head -1`): end quietly with EXIT_PIPE.

    Python would flush stdout again at exit and print a second BrokenPipeError, so
    stdout is pointed at /dev/null first (the recipe of Python's signal docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE


if __name__ == "__main__":
    sys.exit(main())
