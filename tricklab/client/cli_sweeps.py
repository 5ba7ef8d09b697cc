"""`tricklab sweep FILE [--watch]` and `tricklab sweep-report ID`: sweeps from the command line.

Kept apart from tricklab/client/cli.py, which registers these commands through its `add`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from tricklab.client.cli_util import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, load_file
from tricklab.client.http import Client
from tricklab.contract import TERMINAL
from tricklab.sweep_report import format_table


def _counts_line(sw: dict[str, Any]) -> str:
    c = sw["counts"]
    parts = [
        f"{c[k]} {k}"
        for k in ("succeeded", "running", "queued", "pending", "failed", "cancelled")
        if c.get(k)
    ]
    return f"sweep {sw['id']} {sw['status']}: {', '.join(parts)} of {c['total']} jobs"


def print_report(sw: dict[str, Any], out=None) -> None:
    out = out or sys.stdout
    title = f"{sw['name'] or sw['id']} ({sw['kind']}, seeds {sw['seeds']}) — {sw['status']}"
    print(title, file=out)
    print(format_table(sw["results"], sw.get("metric", "final_val_acc")), file=out)


def watch_sweep(c: Client, sweep_id: str, poll: float = 2.0) -> int:
    last = ""
    tty = sys.stderr.isatty()
    while True:
        sw = c.get_sweep(sweep_id)
        line = _counts_line(sw)
        if line != last:
            print(
                ("\r" + line.ljust(len(last))) if tty else line,
                end="" if tty else "\n",
                file=sys.stderr,
            )
            last = line
        if sw["status"] in TERMINAL:
            if tty:
                print(file=sys.stderr)
            print_report(sw)
            return {"succeeded": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(
                sw["status"], EXIT_FAILED
            )
        time.sleep(poll)


def cmd_sweep(c: Client, a: argparse.Namespace) -> int:
    body = load_file(a.file)
    if a.max_concurrent is not None:
        body["max_concurrent"] = a.max_concurrent
    sw = c.sweep(body)
    print(sw["id"])
    print(_counts_line(sw), file=sys.stderr)
    if a.watch:
        try:
            return watch_sweep(c, sw["id"])
        except KeyboardInterrupt:
            print(f"\nstill running; `tricklab sweep-report {sw['id']}` later", file=sys.stderr)
            return EXIT_CANCELLED
    return EXIT_OK


def cmd_sweep_report(c: Client, a: argparse.Namespace) -> int:
    sw = c.get_sweep(a.id, metric=a.metric)
    print_report(sw)
    return EXIT_OK


def cmd_sweep_cancel(c: Client, a: argparse.Namespace) -> int:
    r = c.cancel_sweep(a.id)
    print(f"sweep {a.id}: {r['status']} ({len(r['jobs'])} jobs cancelled or stopping)")
    return EXIT_OK


def add_sweep_commands(add) -> None:
    s = add(
        "sweep", cmd_sweep, "start a sweep or ablation (.json/.yaml: base + grid|ablation, seeds)"
    )
    s.add_argument("file", help="sweep file, e.g. examples/sweeps/ablation_digits.yaml")
    s.add_argument("--watch", action="store_true", help="follow it and print the table at the end")
    s.add_argument("--max-concurrent", type=int, help="override max_concurrent")
    s = add("sweep-report", cmd_sweep_report, "the results table of a sweep")
    s.add_argument("id")
    s.add_argument(
        "--metric",
        default="final_val_acc",
        choices=["final_val_acc", "best_val_acc", "final_val_loss", "final_val_ece"],
        help="the metric rows are compared on (Welch's t-test)",
    )
    s = add("sweep-cancel", cmd_sweep_cancel, "cancel a sweep and its jobs")
    s.add_argument("id")
