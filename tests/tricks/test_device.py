"""Device and precision choice and the GPU-first setup (tricks.device)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import tricks.device as device_mod

CUDA = torch.cuda.is_available()


def test_precision_is_fp32_off_cuda():
    cpu = torch.device("cpu")
    assert device_mod.pick_device("cpu") == cpu
    assert {device_mod.pick_precision(p, cpu) for p in ("auto", "fp32", "bf16", "fp16")} == {"fp32"}


@pytest.mark.parametrize(
    "dev",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs CUDA"))],
)
def test_batch_norm_stays_fp32_under_bf16_autocast(dev):
    """Conv runs in bf16; BatchNorm keeps fp32 weights and running statistics, and its batch
    mean is accumulated in fp32 (a bf16 sum would be off in the third digit)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=1.0)).to(dev)
    x = torch.randn(16, 3, 12, 12, device=dev) + 3.0
    with torch.autocast(dev, dtype=torch.bfloat16):
        act = model[0](x)
        out = model(x)
    bn = model[1]
    assert act.dtype == torch.bfloat16 and out.dtype == torch.bfloat16
    assert bn.weight.dtype == bn.running_mean.dtype == bn.running_var.dtype == torch.float32
    expected = act.double().mean(dim=(0, 2, 3)).float()  # the fp32 mean of the bf16 activations
    torch.testing.assert_close(bn.running_mean, expected, rtol=1e-5, atol=1e-5)


def test_gpu_setup_leaves_the_cpu_path_alone():
    cpu = torch.device("cpu")
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 2))
    assert device_mod.has_conv2d(model) and not device_mod.channels_last(model, cpu)
    before = torch.backends.cudnn.benchmark
    device_mod.setup_backend(cpu)
    assert torch.backends.cudnn.benchmark == before
    placed = device_mod.place_model(model, cpu)
    assert placed[0].weight.is_contiguous()  # not channels_last
    assert device_mod.compiled(model, False) is model


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_runs_channels_last_with_cudnn_benchmark():
    model = device_mod.place_model(nn.Sequential(nn.Conv2d(3, 8, 3)), torch.device("cuda"))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    device_mod.setup_backend(torch.device("cuda"))
    assert torch.backends.cudnn.benchmark


def _has_compiler() -> bool:
    return any(shutil.which(c) for c in ("cc", "gcc", "clang"))


@pytest.mark.slow
@pytest.mark.skipif(not _has_compiler(), reason="torch.compile on the CPU needs a C compiler")
def test_training_compile_trains_the_same_and_reports_compile_time():
    from tricks.data import load_dataset
    from tricks.spec import JobSpec
    from tricks.train import train

    def spec(compile_: bool) -> JobSpec:
        return JobSpec(
            data={"dataset": "digits"},
            model={"arch": "cnn", "channels": [4], "hidden": 8},
            training={"epochs": 1, "batch_size": 128, "device": "cpu", "compile": compile_},
        )

    data = load_dataset(spec(False).data, 0)
    plain, comp = train(spec(False), data), train(spec(True), data)
    assert comp.status == "succeeded" and "compile_s" not in plain.metrics
    assert comp.metrics["compile_s"] > 0.05  # compiling takes far longer than a step
    assert comp.model_state.keys() == plain.model_state.keys()  # no "_orig_mod." prefix
    for name in ("train_loss", "val_loss"):
        np.testing.assert_allclose(
            comp.history[name]["value"], plain.history[name]["value"], rtol=1e-3
        )


FAULTS = """
import resource, sys, torch
torch.set_num_threads(1)
import tricks.device as device_mod
if sys.argv[1] == "0":
    device_mod.keep_heap = lambda: False  # glibc's defaults
from tricks.data import load_dataset
from tricks.spec import JobSpec
from tricks.train import train
reg = {"dropout": 0.2, "mixup": {"alpha": 0.2}, "augment": {"rotate": 10, "crop_padding": 1}}
spec = JobSpec(
    data={"dataset": "digits"}, training={"epochs": 8, "device": "cpu"}, regularization=reg
)
ds = load_dataset(spec.data, 0)
train(spec, ds)  # warm: first-use allocations out of the count
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
train(spec, ds)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc")
def test_keep_heap_stops_the_page_faults_of_a_runs_temporaries() -> None:
    # the kernel's own count of minor page faults of a second identical run: with
    # glibc's defaults a chunk's masks and inputs fault their pages in again each time
    def faults(tune: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", FAULTS, tune], capture_output=True, text=True, check=True
        )
        return int(out.stdout.split()[-1])

    default, tuned = faults("0"), faults("1")
    assert default > 400  # 8 epochs of 22 steps: each chunk faults its pages in again
    assert tuned < default / 3
