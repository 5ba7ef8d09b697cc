"""`bench/gpu.py --quick`: is the CUDA path right? Checks, end to end, in well under 2 minutes.

Run first on a new GPU (then the benchmark itself); on the CPU it runs the same
checks at a reduced size (tests/tricks/test_gpu_bench.py). Each check prints
PASS, WARN or FAIL with its figures, and the exit status is 1 when one FAILs:

- setup: the device and precision picked, channels_last weights, the fused
  optimizer, cudnn.benchmark, bf16 convolutions with BatchNorm kept in fp32;
- no host sync: a Stepper with every trick on (augmentation, mixup and CutMix,
  dropout masks, label smoothing, L1, clipping; fp16 with its grad scaler too on
  CUDA) makes none between reads (`tricks.host_sync.no_host_sync`: torch's sync
  debug mode on CUDA), and a read makes one;
- service = plain: `tricks.train.train` and bench/gpu.py's hand-written loop
  (standardizing as the service does) log the same losses and lrs and end with
  the same weights;
- uint8 = float32: the uint8 images and their float32 copy give the same inputs
  on the device bit for bit, and train alike with every trick on;
- reproducible: two identical runs with every trick end bit for bit alike (or
  how far apart: the yardstick of the comparisons below);
- resume: a run preempted mid-epoch and resumed from its checkpoint ends where
  the uninterrupted run ends;
- compile (with --compile): training.compile trains and reports compile_s.

The run is made deterministic where torch can (`use_deterministic_algorithms`
in warn-only mode, cudnn.deterministic, CUBLAS_WORKSPACE_CONFIG set by
bench/gpu.py), so "the same" means bit for bit. Where the GPU still is not
reproducible run to run (two identical runs differ), a comparison that differs
by at most NOISE_FACTOR times as much is a WARN with its figures, not a FAIL;
steps, lrs and statuses must always match exactly. Ops torch reports as
nondeterministic are listed at the end.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from tricks.callbacks import Callbacks
from tricks.data import Dataset, load_dataset
from tricks.device import (
    autocast,
    grad_scaler,
    native_bf16,
    pick_precision,
    place_model,
    setup_backend,
)
from tricks.host_sync import count_host_syncs, no_host_sync
from tricks.models import build_model
from tricks.regularization import build_optimizer
from tricks.result import TrainResult
from tricks.spec import JobSpec, steps_per_epoch
from tricks.step import Stepper
from tricks.train import train

# (images, side, airbench width, batch, log_every): the CUDA size is the benchmark's net and
# batch on fewer images; the CPU one is small enough for the test suite
SIZES = {"cuda": (8192, 32, 64, 512, 5), "cpu": (600, 16, 8, 64, 3)}
EPOCHS = 2
TRICKS = {
    "dropout": 0.1,
    "label_smoothing": 0.1,
    "l1": 1e-5,
    "mixup": {"alpha": 0.2},
    "cutmix": {"alpha": 1.0},
    "augment": {"crop_padding": 2, "hflip": True},
}
# the sync check also takes the rotation / translation / noise path of tricks.augment
SYNC_AUGMENT = {"crop_padding": 2, "hflip": True, "rotate": 10, "translate": 0.1, "noise_std": 0.05}
# on a GPU that is not reproducible run to run: a WARN, not a FAIL, within these
LOSS_RTOL = 1e-2
NOISE_FACTOR = 10  # times the weight difference of two identical runs


@dataclass
class Run:
    """What two runs are compared on."""

    status: str
    steps: dict[str, list[int]]  # series name -> its steps
    values: dict[str, list[float]]
    state: dict[str, torch.Tensor]


def of_result(r: TrainResult) -> Run:
    assert r.model_state is not None
    return Run(
        r.status,
        {k: v["step"] for k, v in r.history.items()},
        {k: v["value"] for k, v in r.history.items()},
        r.model_state,
    )


def compare(a: Run, b: Run, noise: float | None) -> tuple[str, str]:
    """(level, detail). FAIL where nothing may differ (status, steps, lrs); PASS bit for bit.
    Otherwise it depends on `noise`, how far two identical runs' weights differ: 0 (the
    device is reproducible) FAIL; above 0, WARN while the weights differ by at most
    NOISE_FACTOR times as much and the losses by LOSS_RTOL, else FAIL; None (not
    measured) WARN within LOSS_RTOL."""
    if a.status != b.status:
        return "FAIL", f"status {a.status} vs {b.status}"
    if a.steps != b.steps:
        return "FAIL", "the logged steps differ"
    if a.values.get("lr") != b.values.get("lr"):
        return "FAIL", "the lrs differ"
    loss = max_rel(a.values["train_loss"], b.values["train_loss"])
    weights = max(_weight_diff(a.state[k], b.state[k]) for k in a.state)
    detail = f"train_loss max rel diff {loss:.2e}, weights max rel diff {weights:.2e}"
    if loss == 0 and weights == 0 and a.values == b.values:
        return "PASS", "bit for bit (" + detail + ")"
    if noise is not None:
        detail += f"; identical runs differ by {noise:.2e}"
    ok = math.isfinite(loss) and loss <= LOSS_RTOL
    if noise is not None:
        ok = ok and noise > 0 and weights <= NOISE_FACTOR * noise
    return ("WARN" if ok else "FAIL"), detail


def max_rel(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return math.inf
    return max((abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b, strict=True)), default=0)


def _weight_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if not a.is_floating_point():
        return 0.0 if torch.equal(a, b) else math.inf
    scale = float(a.abs().max()) or 1.0
    return float((a.double() - b.double()).abs().max()) / scale


class StopAt(Callbacks):
    """Preempt at the n-th stop poll (a log point mid-epoch)."""

    def __init__(self, n: int) -> None:
        self.n, self.polls = n, 0

    def should_stop(self) -> str | None:
        self.polls += 1
        return "preempt" if self.polls == self.n else None


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def check(self, name: str, fn: Callable[[], tuple[str, str]]) -> None:
        """Run one check; an exception is its FAIL (the other checks still run)."""
        t0 = time.perf_counter()
        try:
            level, detail = fn()
        except Exception as e:  # noqa: BLE001 - reported, and the run goes on
            traceback.print_exc()
            level, detail = (
                "FAIL",
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            )
        self.rows.append((name, level))
        print(f"{level} {name}: {detail} ({time.perf_counter() - t0:.1f} s)", flush=True)


def with_training(spec: JobSpec, regularization: dict | None = None, **training: Any) -> JobSpec:
    data = spec.model_dump(mode="json")
    if regularization is not None:
        data["regularization"] = regularization
    data["training"].update(training)
    return JobSpec.model_validate(data)


def check_setup(spec: JobSpec, ds: Dataset, dev: torch.device) -> tuple[str, str]:
    precision = pick_precision(spec.training.precision, dev)
    torch.manual_seed(0)
    model = place_model(build_model(spec.model, ds.input_shape, ds.num_classes, 0.0), dev)
    opt = build_optimizer(spec.optimizer, model)
    setup_backend(dev)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    cl = conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = ds.to(dev).train.take(torch.arange(8, device=dev))
    x = x.contiguous(memory_format=torch.channels_last) if cl else x
    with autocast(dev, precision) or contextlib.nullcontext():
        act, out = conv(x), model(x)
    fused = bool(opt.defaults.get("fused"))
    facts = (
        f"{dev} {precision}, channels_last {cl}, fused {fused}, "
        f"cudnn.benchmark {torch.backends.cudnn.benchmark}, conv out {act.dtype}, "
        f"BN weight/running_mean {bn.weight.dtype}/{bn.running_mean.dtype}, logits {out.dtype}"
    )
    if dev.type == "cuda":
        want_bf16 = spec.training.precision == "auto" and native_bf16()
        ok = cl and fused and torch.backends.cudnn.benchmark
        ok = ok and bn.weight.dtype == bn.running_mean.dtype == torch.float32
        ok = ok and (precision == "bf16") == want_bf16
        ok = ok and act.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    else:
        ok = precision == "fp32" and not cl and fused and act.dtype == torch.float32
    return ("PASS" if ok else "FAIL"), facts


def check_syncs(spec: JobSpec, ds: Dataset, dev: torch.device, precision: str) -> tuple[str, str]:
    """Steps between reads inside no_host_sync; the read makes exactly one."""
    spec = with_training(spec, precision=precision)
    precision = pick_precision(precision, dev)
    data = ds.to(dev)
    torch.manual_seed(0)
    model = build_model(spec.model, data.input_shape, data.num_classes, spec.regularization.dropout)
    model = place_model(model, dev)
    opt = build_optimizer(spec.optimizer, model)
    gen = torch.Generator(device=dev).manual_seed(0)
    k = spec.training.log_every
    amp = autocast(dev, precision)
    stepper = Stepper(spec, data, model, opt, grad_scaler(dev, precision), gen, amp, read_every=k)
    stepper.start_epoch(None, None)  # the epoch's seed: its one sync
    for i in range(k):  # warm-up: first-call caches (tricks.augment's grid basis) copy once
        stepper.step(0.01, i, i)
    stepper.read()
    with no_host_sync(dev):
        for i in range(k, 2 * k):
            stepper.step(0.01, i, i)
    with count_host_syncs() as seen:
        loss, _, rows = stepper.read()
    detail = f"{precision}, {k} steps with every trick, then a read making {seen}"
    ok = seen == ["tolist"] and rows == k and math.isfinite(loss)
    return ("PASS" if ok else "FAIL"), detail


def check_service_plain(
    gpu: ModuleType, spec: JobSpec, ds: Dataset, dev: torch.device, noise: Noise
) -> tuple[str, str]:
    r = train(spec, ds)
    _, _, out = gpu.plain(spec, ds, dev, exact=True)
    logged = out["logged"]
    plain = Run(
        "succeeded",
        {"lr": logged["step"], "train_loss": logged["step"]},
        {"lr": logged["lr"], "train_loss": logged["train_loss"]},
        out["model_state"],
    )
    svc = of_result(r)
    svc = Run(
        svc.status,
        {k: svc.steps[k] for k in ("lr", "train_loss")},
        {k: svc.values[k] for k in ("lr", "train_loss")},
        svc.state,
    )
    level, detail = compare(svc, plain, noise.value)
    return level, f"{detail}; val_acc {r.metrics['val_acc']:.4f} vs {out['val_acc']:.4f}"


def as_float(ds: Dataset) -> Dataset:
    """The same dataset with its stored uint8 array as float32 (one copy, shared by both splits)."""
    src = ds.train.src.float()
    return replace(ds, train=replace(ds.train, src=src), val=replace(ds.val, src=src))


def numpy_inputs(ds: Dataset, rows: np.ndarray) -> np.ndarray:
    """The oracle: training rows standardized by numpy on the host, in float64, rounded once."""
    tr = ds.train
    assert tr.index is not None and tr.mean is not None and tr.std is not None
    x = tr.src.numpy()[tr.index.numpy()[rows]].astype(np.float64)
    return ((x - tr.mean.numpy()) / tr.std.numpy()).astype(np.float32)


def check_uint8(spec: JobSpec, ds: Dataset, dev: torch.device, noise: Noise) -> tuple[str, str]:
    f32 = as_float(ds)
    d8, df = ds.to(dev), f32.to(dev)
    rows = torch.randperm(len(d8.train), device=dev)
    got = d8.train.take(rows)
    oracle = torch.from_numpy(numpy_inputs(ds, rows.cpu().numpy()))
    same = torch.equal(got.cpu(), oracle) and torch.equal(got, df.train.take(rows))
    same = same and torch.equal(d8.val.rows(0, len(d8.val)), df.val.rows(0, len(df.val)))
    if not same or d8.train.src.dtype != torch.uint8:
        return "FAIL", f"inputs differ on {dev} (stored {d8.train.src.dtype})"
    level, detail = compare(of_result(train(spec, ds)), of_result(train(spec, f32)), noise.value)
    return level, f"inputs = numpy's bit for bit on {dev}; trained with every trick: {detail}"


class Noise:
    """How far two identical runs' weights differ (0: bit for bit), once measured."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.run: Run | None = None  # the first of the two: the resume check's reference


def check_reproducible(spec: JobSpec, ds: Dataset, noise: Noise) -> tuple[str, str]:
    a, b = of_result(train(spec, ds)), of_result(train(spec, ds))
    level, detail = compare(a, b, None)
    if level == "FAIL":
        return level, detail
    noise.run = a
    noise.value = (
        0.0 if level == "PASS" else max(_weight_diff(a.state[k], b.state[k]) for k in a.state)
    )
    return level, f"two identical runs with every trick: {detail}"


def check_resume(spec: JobSpec, ds: Dataset, noise: Noise) -> tuple[str, str]:
    full = noise.run if noise.run is not None else of_result(train(spec, ds))
    spe = steps_per_epoch(len(ds.train), spec.training.batch_size)
    with tempfile.TemporaryDirectory() as ck:
        first = train(spec, ds, StopAt(2), checkpoint_dir=Path(ck))
        if first.status != "preempted" or first.steps % spe == 0:
            return "FAIL", f"no mid-epoch preemption: {first.status} at step {first.steps}"
        rest = train(spec, ds, checkpoint_dir=Path(ck))
    level, detail = compare(full, of_result(rest), noise.value)
    return level, f"preempted at step {first.steps} (epoch 0 of {spe} steps), resumed: {detail}"


def check_compile(spec: JobSpec, ds: Dataset) -> tuple[str, str]:
    plain, comp = train(spec, ds), train(with_training(spec, compile=True), ds)
    if comp.status != "succeeded" or "compile_s" not in comp.metrics:
        return "FAIL", f"{comp.status} {comp.error}"
    diff = max_rel(plain.history["train_loss"]["value"], comp.history["train_loss"]["value"])
    level = "PASS" if diff <= LOSS_RTOL else "WARN"
    return level, f"compile_s {comp.metrics['compile_s']:.1f}, train_loss max rel diff {diff:.2e}"


def run(gpu: ModuleType, args: Any, dev: torch.device) -> int:
    """Every check at the quick size; 1 if one failed."""
    t0 = time.perf_counter()
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    if dev.type == "cpu":  # the checks compare runs, not speed: one thread, no oversubscription
        torch.set_num_threads(1)
    n, side, width, batch, log_every = SIZES[dev.type]
    n, width, batch = args.n or n, args.width or width, args.batch or batch
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(
        f"quick checks on {dev} ({name}), torch {torch.__version__} (CUDA {torch.version.cuda}): "
        f"{n:,} images 3×{side}×{side}, airbench width {width}, batch {batch}, {EPOCHS} epochs",
        flush=True,
    )
    report = Report()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gpu.make_images(Path(tmp), n, size=side)
        base = with_training(
            gpu.job_spec(EPOCHS, width, batch, dev.type, False), log_every=log_every
        )
        tricks = with_training(base, TRICKS, grad_clip=5.0)
        sync = with_training(base, {**TRICKS, "augment": SYNC_AUGMENT}, grad_clip=5.0)
        ds = load_dataset(base.data, base.training.seed, Path(tmp))
        report.check("setup", lambda: check_setup(base, ds, dev))
        for precision in ["auto"] + (["fp16"] if dev.type == "cuda" else []):
            report.check(
                f"no host sync ({precision})", lambda p=precision: check_syncs(sync, ds, dev, p)
            )
        noise = Noise()
        report.check("reproducible", lambda: check_reproducible(tricks, ds, noise))
        report.check("service = plain", lambda: check_service_plain(gpu, base, ds, dev, noise))
        report.check("uint8 = float32", lambda: check_uint8(tricks, ds, dev, noise))
        report.check("resume", lambda: check_resume(tricks, ds, noise))
        if args.compile:
            report.check("compile", lambda: check_compile(base, ds))
    nondeterministic = sorted(
        {str(w.message).splitlines()[0] for w in caught if "determinis" in str(w.message)}
    )
    for message in nondeterministic[:10]:
        print(f"  nondeterministic op: {message[:200]}")
    failed = [name for name, level in report.rows if level == "FAIL"]
    warned = [name for name, level in report.rows if level == "WARN"]
    print(
        f"quick: {len(report.rows) - len(failed) - len(warned)} passed, {len(warned)} warned, "
        f"{len(failed)} failed in {time.perf_counter() - t0:.1f} s"
        + (f" (failed: {', '.join(failed)})" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0
