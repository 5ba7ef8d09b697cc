"""Where a run computes and how: the device, autocast, the grad scaler and the GPU setup.

Shared by the training loop (`tricks.train`) and the LR range test
(`tricks.lr_find`), so both pick the same device and precision for a spec.
Mixed precision is CUDA only: on the CPU every run is fp32. fp16 needs loss
scaling (Micikevicius et al., "Mixed Precision Training", ICLR 2018,
arXiv:1710.03740), bf16 does not: its exponent range is fp32's.

BatchNorm stays fp32 under autocast: `batch_norm` is on neither of autocast's
cast lists, so its weight, bias and running statistics keep their fp32 dtype
and cuDNN's kernel takes the bf16/fp16 activations with those fp32 parameters,
accumulating the batch statistics in fp32; only its output is in the input's
(low) precision. tests/tricks/test_device.py checks the dtypes on the CPU's
autocast, and bench/gpu.py on CUDA.

The rest is the GPU-first setup (CUDA only; the CPU path is left as it was):
models with 2-D convolutions run channels_last (NHWC, what cuDNN's tensor-core
convolutions want; the inputs are converted a chunk at a time by
`tricks.step.Stepper`), `cudnn.benchmark` picks the fastest convolution
algorithms for the fixed batch shape, and `training.compile` wraps the model
in `torch.compile` (the state dict, checkpoints and the optimizer keep the
plain module; evaluation runs it uncompiled, so train/eval mode and the last
partial validation batch cause no recompiles).
"""

from __future__ import annotations

import ctypes
import functools
import os

import torch
from torch import nn


def pick_device(name: str) -> torch.device:
    """'auto' takes CUDA when there is one; CUDA is the current device by index ("cuda:0" in
    a worker pinned with CUDA_VISIBLE_DEVICES), so reports and tensors name the same one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():  # else an AssertionError deep inside the first .to()
            raise RuntimeError(
                f"training.device is {name!r} but this worker sees no CUDA device "
                "(torch.cuda.is_available() is False): use device 'auto' or 'cpu', "
                "or run the job on a GPU worker"
            )
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def pick_precision(precision: str, device: torch.device) -> str:
    """Autocast only on CUDA: 'auto' is bf16 where the GPU has bf16 tensor cores (Ampere
    on); on older GPUs torch only emulates bf16, far slower than fp32, so 'auto' is fp32
    there. On the CPU always fp32."""
    if device.type != "cuda":
        return "fp32"
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def native_bf16() -> bool:
    """The current GPU computes bf16 in hardware (not torch's emulation of it)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # an older torch, whose answer never counted emulation
        return torch.cuda.is_bf16_supported()


def autocast(device: torch.device, precision: str) -> torch.autocast | None:
    """The autocast context for bf16/fp16; None for fp32 (the loop skips the `with`)."""
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return None


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 (its gradients underflow without one); None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


CHANNELS_LAST_DEVICES = frozenset({"cuda"})  # tests add "cpu" to run that path here


def channels_last(model: nn.Module, device: torch.device) -> bool:
    """Whether a run uses channels_last: on CUDA, for models with 2-D convolutions."""
    return device.type in CHANNELS_LAST_DEVICES and has_conv2d(model)


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The model on `device`, channels_last where `channels_last` says (in place: the
    parameters stay the same objects, so an optimizer built on them still holds them)."""
    model = model.to(device)
    if channels_last(model, device):
        model = model.to(memory_format=torch.channels_last)
    return model


def setup_backend(device: torch.device) -> None:
    """cudnn.benchmark on CUDA: every step has the same shapes, so its search pays once;
    and the host allocator kept from handing memory back to the kernel (`keep_heap`)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    keep_heap()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
# host blocks below this come from the heap, not mmap: above a dropout block's masks,
# 4 MiB exactly (tricks.models.layers.AHEAD_ELEMS float32s, plus the allocator's header),
# which at 4 MiB were mmap'd and faulted in anew every block (2x dropout's cost)
HEAP_MMAP_BYTES = 5 << 20
HEAP_TRIM_BYTES = 32 << 20  # free memory the heap may keep at its top
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # glibc's own knobs


@functools.cache
def keep_heap() -> bool:
    """Tune glibc malloc once per process so a step's temporaries reuse memory (Linux).

    torch's CPU tensors are malloc'd. With glibc's defaults a block over its
    mmap threshold (128 KiB, raised as such blocks are freed) is mmap'd and
    unmapped again when freed, and free memory at the heap's top is handed back
    past the trim threshold: a chunk's masks and augmented inputs, made and
    freed over and over, then cost a page fault per 4 KiB each time (≈1,200 per
    10 digits epochs with every trick on, none with them off). Blocks under
    HEAP_MMAP_BYTES now come from the heap, which keeps up to HEAP_TRIM_BYTES
    free, as PyTorch's CPU tuning guides do with jemalloc/tcmalloc or these
    same glibc settings. Both are small next to a worker's data: bigger blocks
    (a CIFAR batch's floats) still go back to the kernel when freed, so the
    worker's peak memory stays what the data needs. Left alone when the
    environment sets glibc's own MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_,
    and False where there is no glibc (nothing changed).
    """
    if any(k in os.environ for k in MALLOC_ENV):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_BYTES) == 1
        return libc.mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False


def compiled(model: nn.Module, on: bool) -> nn.Module:
    """torch.compile(model) for training.compile, else the model itself (what steps call)."""
    return torch.compile(model) if on else model  # type: ignore[return-value]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a host sync; no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
