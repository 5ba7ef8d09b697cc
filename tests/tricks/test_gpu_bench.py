"""bench/gpu.py runs (on the CPU here, at a reduced size) and prints both rates and the ratio;
--quick passes its checks here; --gpu pins into the GPUs the process may use; the MFU's
peaks and FLOPs against NVIDIA's datasheets and a hand count."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "gpu.py"


def bench(*args: str, cuda_visible: str | None = None, check: bool = True):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if cuda_visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible
    cmd = [sys.executable, str(BENCH), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, check=check, env=env
    )


def test_gpu_bench_prints_both_rates_and_the_ratio() -> None:
    # --gpu 1 of an inherited list: its second entry (a scheduler's or container's choice)
    args = ["--device", "cpu", "--gpu", "1", "--n", "1100", "--epochs", "2", "--width", "8"]
    text = bench(*args, "--rounds", "1", cuda_visible="4,0").stdout
    assert "CUDA_VISIBLE_DEVICES=0" in text  # --gpu pins the device before torch starts
    assert "torch.uint8" in text  # the service's dataset stays uint8
    svc = re.search(r"^service: ([\d,]+) images/s$", text, re.M)
    pln = re.search(r"^plain: +([\d,]+) images/s$", text, re.M)
    ratio = re.search(r"^ratio service/plain: ([\d.]+) ", text, re.M)
    assert svc and pln and ratio, text
    s, p = (float(m.group(1).replace(",", "")) for m in (svc, pln))
    assert s > 0 and p > 0
    # the rates are printed rounded to whole images/s (this CPU makes ~100): the ratio of
    # the printed ones is the printed ratio up to that rounding
    slack = (0.5 / s + 0.5 / p) * (s / p) + 5e-4
    assert abs(float(ratio.group(1)) - s / p) <= slack, text
    assert "MFU: unknown (no peak for cpu; --peak-tflops)" in text
    # both loops trained the same net on the same batches (their inputs differ in rounding
    # only): the same validation accuracy, give or take two of the 110 images
    accs = [float(a) for a in re.findall(r"val_acc ([\d.]+)", text)]
    assert len(accs) == 2 and abs(accs[0] - accs[1]) <= 2 / 110 + 1e-9, text


def test_gpu_out_of_the_inherited_list_is_a_clear_error() -> None:
    out = bench("--device", "cpu", "--gpu", "2", cuda_visible="4,0", check=False)
    assert out.returncode == 2  # argparse's usage error, before torch is imported
    assert "--gpu 2: this process may use 2 GPU(s) (CUDA_VISIBLE_DEVICES=4,0)" in out.stderr


def test_quick_checks_pass_on_the_cpu() -> None:
    out = bench("--quick", "--device", "cpu", check=False)
    text = out.stdout
    assert out.returncode == 0, text + out.stderr
    checks = re.findall(r"^(PASS|WARN|FAIL) ([^:]+):", text, re.M)
    names = [name for _, name in checks]
    assert names == [
        "setup",
        "no host sync (auto)",
        "reproducible",
        "service = plain",
        "uint8 = float32",
        "resume",
    ], text
    assert {level for level, _ in checks} == {"PASS"}, text  # the CPU is reproducible
    assert "bit for bit" in text and re.search(r"^quick: 6 passed, 0 warned, 0 failed", text, re.M)


@pytest.fixture(scope="module")
def gpu_module():
    """bench/gpu.py imported (it parses sys.argv at import: none given here)."""
    saved = sys.argv
    sys.argv = [str(BENCH)]
    try:
        spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.argv = saved
    return module


@pytest.mark.parametrize(
    ("name", "tflops"),
    [  # torch.cuda.get_device_name → NVIDIA's dense bf16 figure (the sparsity one halved)
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA H200 NVL", 835),
        ("NVIDIA GH200 480GB", 989),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA A100 80GB PCIe", 312),
        ("NVIDIA L4", 121),
        ("Tesla T4", None),
    ],
)
def test_peak_bf16_by_device_name(gpu_module, name: str, tflops: int | None) -> None:
    peak = gpu_module.peak_bf16(name)
    assert (peak if peak is None else round(peak / 1e12)) == tflops


def test_mfu_flops_are_the_hand_count(gpu_module) -> None:
    """airbench widths 8/32/32 on 3×16×16, counted by hand (2 FLOPs a multiply-add, every
    conv output × C_in × k²): stem 2×2 24 ch 15×15, then per group conv → pool → conv."""
    spec = gpu_module.job_spec(1, 8, 64, "cpu", False)  # one epoch: warm-up half of it

    class Shape:
        input_shape, num_classes = (3, 16, 16), 10

    conv = [  # (c_out, c_in, k², output side)
        (24, 3, 4, 15),
        (8, 24, 9, 15),
        (8, 8, 9, 7),
        (32, 8, 9, 7),
        (32, 32, 9, 3),
        (32, 32, 9, 3),
        (32, 32, 9, 1),
    ]
    hand = sum(2 * co * ci * k * s * s for co, ci, k, s in conv) + 2 * 32 * 10  # + the head
    assert gpu_module.forward_flops_per_image(spec, Shape) == hand == 1_540_288
    # the window: 3 × forward per training image, plus the evaluation's forwards
    fwd = float(hand)
    assert gpu_module.window_flops_per_image(fwd, 1000, 100) == pytest.approx(3.1 * fwd)
