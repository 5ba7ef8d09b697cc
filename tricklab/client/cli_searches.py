"""`tricklab search FILE [--watch]`, `tricklab search-report ID`, `tricklab search-cancel ID`.

Kept apart from tricklab/client/cli.py, which registers these commands through its `add`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from tricklab.client.cli_util import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, load_file
from tricklab.client.http import Client

DONE = ("succeeded", "failed", "cancelled")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list) or v is None:
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _metric(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def trials_table(s: dict[str, Any]) -> str:
    """One row per trial: number, state, metric, epochs, then each parameter."""
    paths = list(s["space"])
    head = ["#", "state", s["metric"], "epochs", *paths]
    rows = [
        [
            str(t["number"]),
            t["state"],
            _metric(t["metric"]),
            str(t["epochs_spent"]),
            *[_fmt(t["params"].get(p)) for p in paths],
        ]
        for t in s["trials"]
    ]
    best = (s.get("best") or {}).get("number")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    for r in rows:
        mark = "* " if r[0] == str(best) else "  "
        lines.append(mark + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def summary(s: dict[str, Any]) -> str:
    b = s["budget"]
    c = s["counts"]
    parts = [f"{v} {k}" for k, v in sorted(c.items())]
    line = (
        f"search {s['id']} {s['status']} ({s['algorithm']}, {s['mode']} {s['metric']}): "
        f"{len(s['trials'])}/{s['trials_planned']} trials [{', '.join(parts)}]; "
        f"{b['epochs_spent']} of {b['epochs_full']} epochs"
    )
    return line


def print_report(s: dict[str, Any], out=None) -> None:
    out = out or sys.stdout
    print(f"{s['name'] or s['id']} — {summary(s)}", file=out)
    print(trials_table(s), file=out)
    if s.get("best"):
        print(
            f"best: trial {s['best']['number']} {s['metric']} = {_metric(s['best']['metric'])} "
            f"with {json.dumps(s['best']['params'])}",
            file=out,
        )
    if s.get("importance"):
        imp = ", ".join(f"{k} {v:.2f}" for k, v in s["importance"].items())
        print(f"importance (fANOVA): {imp}", file=out)
    conf = s.get("confirm")
    if conf and conf["rows"]:
        print(f"confirm: top {conf['top_k']} re-run with {conf['seeds']} fresh seeds", file=out)
        for row in conf["rows"]:
            std = "" if row["std"] is None else f" ± {row['std']:.4f}"
            mean = "-" if row["mean"] is None else f"{row['mean']:.4f}"
            print(
                f"  #{row['rank'] + 1} trial {row['trial']}: {mean}{std} (n={row['n']}; "
                f"search {_metric(row['search_value'])})",
                file=out,
            )
        if conf.get("winner"):
            print("  " + conf["winner"]["sentence"], file=out)
    if s.get("error"):
        print(f"error: {s['error']}", file=out)


def watch_search(c: Client, search_id: str, poll: float = 2.0) -> int:
    last = ""
    live = sys.stdout.isatty()
    while True:
        s = c.get_search(search_id)
        text = summary(s) + "\n" + trials_table(s)
        if text != last:
            if live:
                sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")  # redraw the live table
                sys.stdout.flush()
            else:
                print(summary(s), file=sys.stderr)
            last = text
        if s["status"] in DONE:
            print_report(s)
            return {"succeeded": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(s["status"], EXIT_FAILED)
        time.sleep(poll)


def cmd_search(c: Client, a: argparse.Namespace) -> int:
    body = load_file(a.file)
    if a.trials is not None:
        body["trials"] = a.trials
    s = c.search(body)
    print(s["id"])
    print(summary(s), file=sys.stderr)
    if a.watch:
        try:
            return watch_search(c, s["id"])
        except KeyboardInterrupt:
            print(f"\nstill running; `tricklab search-report {s['id']}` later", file=sys.stderr)
            return EXIT_CANCELLED
    return EXIT_OK


def cmd_search_report(c: Client, a: argparse.Namespace) -> int:
    s = c.get_search(a.id)
    if a.json:
        print(json.dumps(s, indent=2))
    else:
        print_report(s)
    return EXIT_OK


def cmd_search_cancel(c: Client, a: argparse.Namespace) -> int:
    r = c.cancel_search(a.id)
    print(f"search {a.id}: {r['status']} ({len(r['jobs'])} trials cancelled or stopping)")
    return EXIT_OK


def add_search_commands(add) -> None:
    s = add("search", cmd_search, "start a search (.json/.yaml: base + space + algorithm + trials)")
    s.add_argument("file", help="search file, e.g. examples/searches/digits_tpe.yaml")
    s.add_argument("--watch", action="store_true", help="follow it with a live trials table")
    s.add_argument("--trials", type=int, help="override trials")
    s = add("search-report", cmd_search_report, "trials, best, importance and the confirm table")
    s.add_argument("id")
    s.add_argument("--json", action="store_true", help="the whole search as JSON")
    s = add("search-cancel", cmd_search_cancel, "cancel a search and its running trials")
    s.add_argument("id")
