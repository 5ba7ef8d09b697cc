"""bench/gpu.py runs (on the CPU here, at a reduced size) and prints both rates and the ratio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_bench_prints_both_rates_and_the_ratio() -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--gpu", "0"]
    cmd += ["--n", "1100", "--epochs", "2", "--width", "8", "--rounds", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)
    text = out.stdout
    assert "CUDA_VISIBLE_DEVICES=0" in text  # --gpu pins the device before torch starts
    assert "torch.uint8" in text  # the service's dataset stays uint8
    svc = re.search(r"^service: ([\d,]+) images/s$", text, re.M)
    pln = re.search(r"^plain: +([\d,]+) images/s$", text, re.M)
    ratio = re.search(r"^ratio service/plain: ([\d.]+) ", text, re.M)
    assert svc and pln and ratio, text
    s, p = (float(m.group(1).replace(",", "")) for m in (svc, pln))
    assert s > 0 and p > 0
    assert abs(float(ratio.group(1)) - s / p) < 2e-3, text
    assert "MFU: unknown (no peak for cpu)" in text
    # both loops trained the same net on the same batches (their inputs differ in rounding
    # only): the same validation accuracy, give or take two of the 110 images
    accs = [float(a) for a in re.findall(r"val_acc ([\d.]+)", text)]
    assert len(accs) == 2 and abs(accs[0] - accs[1]) <= 2 / 110 + 1e-9, text
