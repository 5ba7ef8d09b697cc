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


HEAP = """
import ctypes, sys, torch
class Info(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h)
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
from tricks.device import keep_heap
tuned = sys.argv[1] == "1" and keep_heap()
def mapped_mib(nbytes):  # how much of a live tensor of nbytes glibc mmap'd for it
    before = libc.mallinfo2().hblkhd
    t = torch.empty(nbytes // 4)
    mapped = libc.mallinfo2().hblkhd - before
    del t
    return mapped >> 20
from tricks.models.layers import AHEAD_ELEMS
small, big = mapped_mib(3 << 20), mapped_mib(6 << 20)  # first: a freed mmap raises glibc's
block = mapped_mib(4 * AHEAD_ELEMS)  # default threshold; then a dropout block's float32 masks
print(tuned, small, big, block, libc.mallinfo2().fordblks >> 20)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc")
def test_keep_heap_serves_a_chunks_temporaries_from_the_heap() -> None:
    # glibc's own accounting (mallinfo2): by default a 3 MiB tensor (a chunk's masks) is
    # mmap'd, and unmapped when freed, so the next one faults its pages in again (the
    # kernel counted ≈1,100 minor faults per 8 digits epochs with the tricks on, ≈65 tuned);
    # tuned, it comes from the heap, which keeps it when freed, while a 6 MiB one (a CIFAR
    # batch's floats) is still mmap'd and goes back to the kernel
    def heap(tune: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", HEAP, tune], capture_output=True, text=True, check=True
        )
        return out.stdout.split()

    assert heap("0")[:2] == ["False", "3"]
    tuned, small, big, block, kept = heap("1")
    assert (tuned, small, big) == ("True", "0", "6") and int(kept) >= 3
    # a dropout block's 4 MiB of masks too (the allocator adds a header: at a 4 MiB threshold
    # it was mmap'd, and dropout cost 2x per step when chunks were long enough for full blocks)
    assert block == "0"
