"""Time tricks.schedules.preview for 100k steps against a plain Python loop over lr_at.

    .venv/bin/python bench/preview.py [--steps-per-epoch 1000] [--epochs 100] [--repeats 7]

preview is what POST /schedules/preview serves, so it must stay well under 50 ms
for 100k steps; the loop is what a naive implementation would cost.
"""

from __future__ import annotations

import argparse
import statistics
import time

from tricks.schedules import lr_at, preview
from tricks.spec import ScheduleSpec

KINDS = {
    "cosine+warmup": {"warmup": {"epochs": 2}, "decay": {"kind": "cosine"}},
    "multistep+warmup": {
        "warmup": {"epochs": 2},
        "decay": {"kind": "multistep", "milestones": [30, 60, 80]},
    },
    "onecycle": {"decay": {"kind": "onecycle"}},
    "cosine_restarts x2": {"decay": {"kind": "cosine_restarts", "t0_epochs": 1, "t_mult": 2}},
    "cosine per epoch": {"per": "epoch", "decay": {"kind": "cosine"}},
}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps-per-epoch", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    spe, epochs, total = a.steps_per_epoch, a.epochs, a.steps_per_epoch * a.epochs
    print(f"{total} steps ({epochs} epochs x {spe}), median of {a.repeats} runs")

    for name, body in KINDS.items():
        s = ScheduleSpec.model_validate(body)

        def fast(s=s):
            return preview(lr=0.1, epochs=epochs, steps_per_epoch=spe, schedule=s)

        fast()  # warm up imports and caches
        print(f"  preview {name:<20} {median_time(fast, a.repeats) * 1e3:8.2f} ms")

    s = ScheduleSpec.model_validate(KINDS["cosine+warmup"])

    def loop():
        return [
            lr_at(t, lr0=0.1, schedule=s, steps_per_epoch=spe, epochs=epochs) for t in range(total)
        ]

    t_fast = median_time(
        lambda: preview(lr=0.1, epochs=epochs, steps_per_epoch=spe, schedule=s), a.repeats
    )
    t_loop = median_time(loop, max(1, a.repeats // 2))
    print(
        f"  loop over lr_at (cosine+warmup)   {t_loop * 1e3:8.2f} ms ({t_loop / total * 1e6:.1f} us/step)"
    )
    print(f"  preview is {t_loop / t_fast:.0f}x faster than the loop")


if __name__ == "__main__":
    main()
