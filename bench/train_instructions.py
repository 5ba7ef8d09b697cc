"""The training-loop ratios of bench/train_overhead.py in instructions, not seconds.

    .venv/bin/python bench/train_instructions.py [--epochs 3] [--tricks]   # 5 minutes

On a shared VM the timed ratios swing by ±30% from run to run; instruction counts
do not (two runs of the same variant here: 317,377,204 and 317,576,234, 0.06%
apart). Each variant runs in its own process under valgrind's callgrind with
instrumentation off (importing torch takes ≈ 20 s that way), trains one epoch
to take first-call costs out, then counts the instructions of one `--epochs`
run: instrumentation is switched on and off around it with `callgrind_control`
(synchronous: it returns once the process has switched). Variants, as in
train_overhead.py (digits, MLP 256-128, batch 64, one torch thread, CPU):
plain (the hand-written loop), tricks off, all tricks, and with `--tricks` each
trick alone.

Printed: instructions per optimizer step of each variant, and the ratios
plain / tricks off and tricks off / all tricks (instructions b / a, so 1.0 is
parity and higher is better, as the timed ratios; targets ≥ 0.97 and ≥ 0.85).
What instructions leave out: memory effects (cache misses, page faults, the
allocator) and the width of vector instructions, so it is a proxy for time, most
faithful where the step is op overhead, as on this small MLP. Needs valgrind
(on every machine of this project); prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import os, subprocess, sys, torch
sys.path[:0] = [{root!r}, {bench!r}]
torch.set_num_threads(1)
import train_overhead as b
from tricks.data import load_dataset
from tricks.spec import steps_per_epoch
variant, epochs = {variant!r}, {epochs}
only = variant[1:] if variant.startswith("+") else None
tricks = variant not in ("plain", "tricks off")
spec = b.make_spec(epochs, 10, tricks, only=only)
ds = load_dataset(spec.data, 0)
run = b.plain_train if variant == "plain" else b.train
run(b.make_spec(1, 10, tricks, only=only), ds)  # first-call costs out, uncounted
toggle = lambda state: subprocess.run(
    ["callgrind_control", "-i", state, str(os.getpid())], capture_output=True, check=True
)
toggle("on")
run(spec, ds)
toggle("off")
print("steps", steps_per_epoch(ds.x_train.shape[0], spec.training.batch_size) * epochs)
"""


def instructions(variant: str, epochs: int, out_dir: Path) -> tuple[int, int]:
    """(instructions counted, optimizer steps) of one variant's run under callgrind."""
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), variant=variant, epochs=epochs)
    out = out_dir / f"callgrind.{re.sub(r'[^a-z]', '_', variant)}.out"
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         sys.executable, "-c", code],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    refs = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    steps = re.search(r"^steps (\d+)$", proc.stdout, re.M)
    if refs is None or steps is None:
        raise RuntimeError(f"no count from callgrind for {variant}:\n{proc.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(steps.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--tricks", action="store_true", help="also each trick alone")
    args = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("needs valgrind (callgrind and callgrind_control): apt-get install valgrind")
    sys.path.insert(0, str(ROOT / "bench"))
    from train_overhead import ALL_TRICKS

    variants = ["plain", "tricks off", "all tricks"]
    if args.tricks:
        variants += [f"+{t}" for t in ALL_TRICKS]
    per_step: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in variants:
            n, steps = instructions(v, args.epochs, Path(tmp))
            per_step[v] = n / steps
            print(f"  {v:<18} {per_step[v] / 1e6:7.3f} M instructions/step ({n:,} in {steps})")
    off = per_step["tricks off"]
    print(f"digits, mlp [256, 128], batch 64, {args.epochs} epochs, 1 torch thread, callgrind")
    print(f"  tricks off / plain        {per_step['plain'] / off:.3f}   target >= 0.97")
    print(f"  all tricks / tricks off   {off / per_step['all tricks']:.3f}   target >= 0.85")
    for v in variants[3:]:
        print(f"  {v:<18} +{(per_step[v] - off) / 1e3:8.1f} k instructions/step over tricks off")


if __name__ == "__main__":
    main()
