"""Run a sweep file locally through tricks (no service) and print its results table.

    python bench/ablation.py examples/sweeps/ablation_digits.yaml [--json out.json]

The same code as the service: tricklab.sweep_spec expands the variants (each
validated with tricks.spec.JobSpec), tricks.train trains every (variant, seed),
and tricklab.sweep_report builds the table (mean ± std over seeds, Welch's
t-test against the row compared with). Runs are sequential, on the CPU unless a
spec asks otherwise; `tricklab sweep FILE --watch` runs the same file on workers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tricklab.sweep_report import build_table, format_table  # noqa: E402
from tricklab.sweep_spec import SweepSpec, child_spec, expand  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--metric", default="final_val_acc")
    a = ap.parse_args()

    import torch

    from tricks.data import load_dataset
    from tricks.spec import JobSpec
    from tricks.train import train

    torch.set_num_threads(1)
    raw = yaml.safe_load(Path(a.file).read_text())
    sweep = SweepSpec.model_validate(raw)
    variants = expand(sweep)
    specs = {
        (v.index, s): JobSpec.model_validate(child_spec(sweep, v, s))
        for v in variants
        for s in v.seeds
    }
    runs: list[list[dict]] = [[] for _ in variants]
    t_all = time.perf_counter()
    for (i, seed), spec in specs.items():
        data = load_dataset(spec.data, spec.training.seed)
        t0 = time.perf_counter()
        r = train(spec, data)
        dt = time.perf_counter() - t0
        runs[i].append(
            {"status": r.status, "result": {"metrics": r.metrics, "best": r.best, "duration_s": dt}}
        )
        print(
            f"{variants[i].name:>18} seed {seed}: {r.status} val_acc {r.metrics.get('val_acc', float('nan')):.4f} "
            f"({dt:.1f}s)",
            file=sys.stderr,
        )
    meta = [
        {
            "index": v.index,
            "name": v.name,
            "change": v.change,
            "compare_to": v.compare_to,
            "seeds": v.seeds,
        }
        for v in variants
    ]
    rows = build_table(meta, runs, a.metric)
    print(
        f"\n{sweep.name} — {len(specs)} runs in {time.perf_counter() - t_all:.0f}s (local, via tricks)\n"
    )
    print(format_table(rows, a.metric))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
