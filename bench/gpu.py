"""CIFAR-shaped images/s through the service's loop vs a plain PyTorch loop, and the MFU.

    .venv/bin/python bench/gpu.py                    # CUDA when there is one, else a CPU run
    .venv/bin/python bench/gpu.py --gpu 1 --compile  # pin GPU 1 (CUDA_VISIBLE_DEVICES)
    .venv/bin/python bench/gpu.py --device cpu --n 2048 --epochs 2 --width 16
    .venv/bin/python bench/gpu.py --quick            # correctness on the device first (< 2 min)

Workload: 50,000 × 3 × 32 × 32 uint8 synthetic images, 10 classes, each class a
fixed random pattern blended into noise (a learnable signal), 10% held out; the
`airbench` net, batch 512, SGD (nesterov, momentum 0.9, weight decay 5e-4) with
linear warm-up + cosine per step, no augmentation or mixing; bf16 autocast and
channels_last on CUDA (fp32 on the CPU). On the CPU the defaults shrink to 2,048
images, 2 epochs and airbench widths 16·[1, 4, 4] so the test suite can run it
(tests/tricks/test_gpu_bench.py); on an H200 the full run takes about a minute.

(a) service: `tricks.train.train` with a JobSpec on the dataset loaded by
    `tricks.data.load_dataset` from the stored layout (.npy, memory-mapped, the
    worker's cache): the data on the device as uint8 and standardized per chunk,
    lrs from tricks.schedules, the Stepper, a log point every 10 steps (its one
    host sync), the per-epoch evaluation (loss, accuracy, ECE), the history and
    callbacks (a no-op Callbacks subclass). Not included: the worker's Reporter
    (Redis writes), checkpoints (no checkpoint_dir), claiming, loading the data.
(b) plain: the loop written by hand on the same uint8 data on the device: per
    epoch a randperm; per step set lr → gather → (x.float() − mean)/std →
    channels_last → forward under autocast → cross-entropy → backward → step →
    zero_grad, the loss summed on the device and read every 10 steps; per
    epoch validation loss and accuracy. The same net, init, optimizer, lrs,
    precision, memory format, cudnn.benchmark and (--compile) torch.compile.

Runs alternate (service, plain, service, plain, …; --rounds). The rate of a run
is its training images per second after its first epoch (compilation, cuDNN's
search and warm-up excluded; with one epoch, over the whole run); each
variant's rate is the fastest of its runs (contention only adds time), and the
median over rounds of the ratio within a round is printed too. MFU = the FLOPs of the measured
window (training images × 3 × the forward FLOPs of one image, for forward +
backward, plus its validation images × 1: the window holds the per-epoch
evaluations too; forward FLOPs counted by torch.utils.flop_counter.FlopCounterMode)
/ (its seconds × the GPU's dense bf16 peak: PEAK_BF16, or --peak-tflops). Prints
figures; asserts nothing.

--quick checks correctness instead, at a small size (bench/gpu_quick.py: no host
sync inside steps, the GPU setup, service = plain loop, uint8 = float32, exact
resume) and exits 1 if a check fails: the first thing to run on a new GPU; with
--compile it adds one compiled run (its compilation takes about a minute).

--gpu N pins the N-th GPU this process may use: physical GPU N, or the N-th
entry of an inherited CUDA_VISIBLE_DEVICES (a scheduler's or container's list).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# dense bf16 tensor-core TFLOP/s (NVIDIA's datasheets halve the "with sparsity" figures),
# matched against torch.cuda.get_device_name in this order: the more specific name first
PEAK_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200 NVL", 835e12),
    ("H100", 989e12),  # SXM ("NVIDIA H100 80GB HBM3"); GH200's GPU too
    ("H200", 989e12),  # SXM ("NVIDIA H200")
    ("A100", 312e12),  # SXM and PCIe alike
    ("L4", 121e12),
)
LOG_EVERY, EVAL_BATCH = 10, 1024


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--gpu", type=int, default=None, help="pin this GPU (CUDA_VISIBLE_DEVICES)")
    p.add_argument("--n", type=positive, default=None, help="images (default 50,000; CPU 2,048)")
    p.add_argument("--epochs", type=positive, default=None, help="per run (default 5; CPU 2)")
    p.add_argument("--width", type=positive, default=None, help="airbench base width (64; CPU 16)")
    p.add_argument("--batch", type=positive, default=None, help="default 512 (--quick CPU: 64)")
    p.add_argument("--rounds", type=positive, default=2, help="runs of each variant, interleaved")
    p.add_argument("--compile", action="store_true", help="training.compile / torch.compile")
    p.add_argument("--quick", action="store_true", help="correctness checks instead (< 2 min)")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for MFU")
    args = p.parse_args()
    if args.gpu is not None:
        try:
            args.visible = pinned_gpu(args.gpu, os.environ.get("CUDA_VISIBLE_DEVICES"))
        except ValueError as e:
            p.error(str(e))
    return args


def pinned_gpu(n: int, inherited: str | None) -> str:
    """The CUDA_VISIBLE_DEVICES entry of --gpu n: n itself, or the n-th inherited entry."""
    if n < 0:
        raise ValueError(f"--gpu: a GPU index is at least 0, got {n}")
    if inherited is None:
        return str(n)
    entries = [e.strip() for e in inherited.split(",") if e.strip()]
    if n >= len(entries):
        raise ValueError(
            f"--gpu {n}: this process may use {len(entries)} GPU(s) "
            f"(CUDA_VISIBLE_DEVICES={inherited}); pick 0..{len(entries) - 1}"
        )
    return entries[n]


ARGS = parse()
if ARGS.gpu is not None:  # before torch is imported: CUDA reads it once, at initialisation
    os.environ["CUDA_VISIBLE_DEVICES"] = ARGS.visible
if ARGS.quick:  # cuBLAS reproducible run to run (read when CUDA starts): resume is compared
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tricks.callbacks import Callbacks  # noqa: E402
from tricks.data import Dataset, load_dataset  # noqa: E402
from tricks.device import (  # noqa: E402
    autocast,
    compiled,
    pick_device,
    pick_precision,
    place_model,
    synchronize,
)
from tricks.models import build_model  # noqa: E402
from tricks.regularization import build_optimizer  # noqa: E402
from tricks.schedules import lr_curve  # noqa: E402
from tricks.spec import JobSpec, steps_per_epoch  # noqa: E402
from tricks.train import train  # noqa: E402


def make_images(root: Path, n: int, seed: int = 0, size: int = 32) -> None:
    """The stored layout (x.npy uint8, y.npy uint8) of n synthetic CIFAR-shaped images
    (3 × size × size: 32 as CIFAR; --quick uses smaller ones on the CPU)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.uint8)
    patterns = rng.integers(0, 256, (10, 3, size, size)).astype(np.uint16)
    x = np.empty((n, 3, size, size), np.uint8)
    for lo in range(0, n, 4096):  # bounded temporaries
        hi = min(n, lo + 4096)
        noise = rng.integers(0, 256, (hi - lo, 3, size, size), dtype=np.uint16)
        x[lo:hi] = ((noise + patterns[y[lo:hi]]) // 2).astype(np.uint8)
    (root / "bench").mkdir(parents=True, exist_ok=True)
    np.save(root / "bench" / "x.npy", x)
    np.save(root / "bench" / "y.npy", y)


def job_spec(epochs: int, width: int, batch: int, device: str, compile_: bool) -> JobSpec:
    return JobSpec.model_validate(
        {
            "data": {"dataset": "bench", "val_fraction": 0.1},
            "model": {"arch": "airbench", "widths": [width, 4 * width, 4 * width]},
            "optimizer": {
                "name": "sgd",
                "lr": 0.1,
                "momentum": 0.9,
                "nesterov": True,
                "weight_decay": 5e-4,
            },
            # a warm-up epoch; half the run when it is one epoch (the spec wants decay after it)
            "schedule": {"warmup": {"epochs": min(1.0, epochs / 2)}, "decay": {"kind": "cosine"}},
            "training": {
                "epochs": epochs,
                "batch_size": batch,
                "log_every": LOG_EVERY,
                "device": device,
                "compile": compile_,
            },
        }
    )


class Clock(Callbacks):
    """When the service's first epoch ended (the steady-state rate starts there)."""

    def __init__(self, dev: torch.device) -> None:
        self.dev, self.first_epoch_end = dev, None

    def on_epoch_end(self, epoch: int, step: int, metrics: dict, progress: dict) -> None:
        if epoch == 0:
            synchronize(self.dev)  # evaluate() synced already: nothing may still be queued
            self.first_epoch_end = time.perf_counter()


def service(spec: JobSpec, ds: Dataset, dev: torch.device) -> tuple[float, float, dict]:
    clock = Clock(dev)
    t0 = time.perf_counter()
    r = train(spec, ds, clock)
    synchronize(dev)
    end = time.perf_counter()
    assert r.status == "succeeded", r.error
    return t0, (clock.first_epoch_end or t0), {"end": end, **r.metrics}


def plain(
    spec: JobSpec, ds: Dataset, dev: torch.device, *, exact: bool = False
) -> tuple[float, float, dict]:
    """The hand-written loop: see the module docstring. `exact` (--quick): standardize in
    float64 and round once, as the service does, so both see the same inputs bit for bit;
    the result then also carries the logged losses and lrs and the final weights."""
    tr = spec.training
    t0 = time.perf_counter()
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    assert ds.train.index is not None and ds.val.index is not None and ds.train.mean is not None
    assert ds.train.std is not None
    X, idx_tr, idx_va = ds.train.src.to(dev), ds.train.index.to(dev), ds.val.index.to(dev)
    # by position in the split; stored compact (uint8, int16): cross_entropy wants int64
    y_tr, y_va = ds.y_train.to(dev).long(), ds.y_val.to(dev).long()
    stats = (
        (ds.train.mean, ds.train.std) if exact else (ds.train.mean.float(), ds.train.std.float())
    )
    mean, std = (t.to(dev) for t in stats)
    n, bs = len(idx_tr), min(tr.batch_size, len(idx_tr))
    spe = steps_per_epoch(n, bs)
    lrs = lr_curve(
        lr0=spec.optimizer.lr, schedule=spec.schedule, steps_per_epoch=spe, epochs=tr.epochs
    )
    torch.manual_seed(tr.seed)
    model = place_model(build_model(spec.model, ds.input_shape, ds.num_classes, 0.0), dev)
    opt = build_optimizer(spec.optimizer, model)
    net = compiled(model, tr.compile)
    amp = autocast(dev, pick_precision(tr.precision, dev)) or contextlib.nullcontext()
    fmt = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    gen = torch.Generator(device=dev).manual_seed(tr.seed)

    def inputs(rows: torch.Tensor) -> torch.Tensor:
        if exact:
            return ((X[rows].double() - mean) / std).float().contiguous(memory_format=fmt)
        return ((X[rows].float() - mean) / std).contiguous(memory_format=fmt)

    first, step, loss_sum = t0, 0, torch.zeros((), device=dev)
    logged: dict[str, list] = {"step": [], "train_loss": [], "lr": []}
    since = 0  # steps in the current log interval
    for epoch in range(tr.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen, device=dev)
        for b in range(spe):
            for g in opt.param_groups:
                g["lr"] = float(lrs[step])
            sel = perm[b * bs : (b + 1) * bs]
            with amp:
                logits = net(inputs(idx_tr[sel]))
            loss = F.cross_entropy(logits.float(), y_tr[sel])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            step, since = step + 1, since + 1
            if step % tr.log_every == 0 or b == spe - 1:
                total = loss_sum.item()  # note: the one sync of a log interval
                loss_sum.zero_()
                if exact:
                    logged["step"].append(step - 1)
                    logged["train_loss"].append(total / since)
                    logged["lr"].append(opt.param_groups[0]["lr"])
                since = 0
        model.eval()
        with torch.no_grad(), amp:
            hits = torch.zeros((), device=dev)
            for lo in range(0, len(idx_va), EVAL_BATCH):
                logits = model(inputs(idx_va[lo : lo + EVAL_BATCH])).float()
                hits += (logits.argmax(1) == y_va[lo : lo + EVAL_BATCH]).sum()
            val_acc = hits.item() / len(idx_va)
        if epoch == 0:
            synchronize(dev)  # val_acc's .item() synced already: explicit all the same
            first = time.perf_counter()
    synchronize(dev)
    out = {"end": time.perf_counter(), "val_acc": val_acc}
    if exact:  # after the clock stopped
        out["logged"] = logged
        out["model_state"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return t0, first, out


def forward_flops_per_image(spec: JobSpec, ds: Dataset) -> float:
    """The forward FLOPs of one image (FlopCounterMode, on the CPU, in fp32)."""
    model = build_model(spec.model, ds.input_shape, ds.num_classes, 0.0).eval()
    x = torch.zeros((4, *ds.input_shape))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return fc.get_total_flops() / 4


def window_flops_per_image(fwd: float, per_epoch: int, n_val: int) -> float:
    """FLOPs of the measured window per training image: 3 × forward (forward + backward)
    for it, plus its share of the epoch's evaluation (n_val forwards per epoch)."""
    return 3 * fwd + fwd * n_val / per_epoch


def peak_bf16(name: str) -> float | None:
    """The dense bf16 peak (FLOP/s) of a GPU by its torch.cuda.get_device_name; None: unknown."""
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


def peak_flops(dev: torch.device) -> tuple[float | None, str]:
    if dev.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(dev)
    if ARGS.peak_tflops is not None:
        return ARGS.peak_tflops * 1e12, name
    return peak_bf16(name), name


def main() -> int:
    dev = pick_device(ARGS.device)
    gpu = dev.type == "cuda"
    if ARGS.quick:
        import gpu_quick  # bench/: the script's own directory is on sys.path

        return gpu_quick.run(sys.modules[__name__], ARGS, dev)
    n = ARGS.n or (50_000 if gpu else 2048)
    epochs = ARGS.epochs or (5 if gpu else 2)
    width = ARGS.width or (64 if gpu else 16)
    batch = ARGS.batch or 512
    spec = job_spec(epochs, width, batch, dev.type, ARGS.compile)
    with tempfile.TemporaryDirectory() as tmp:
        make_images(Path(tmp), n)
        ds = load_dataset(spec.data, spec.training.seed, Path(tmp))
        n_train = len(ds.train)
        per_epoch = steps_per_epoch(n_train, batch) * min(batch, n_train)
        print(
            f"device {dev} ({pick_precision('auto', dev)}), {n:,} images {ds.train.dtype}, "
            f"airbench widths {spec.model.widths}, batch {batch}, {epochs} epochs, "
            f"compile {ARGS.compile}, {ARGS.rounds} rounds"
            + (
                f", CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}"
                if ARGS.gpu is not None
                else ""
            ),
            flush=True,
        )
        rates: dict[str, list[float]] = {"service": [], "plain": []}
        extra: dict[str, dict] = {}
        for rnd in range(ARGS.rounds):
            for name, fn in (("service", service), ("plain", plain)):
                t0, first, out = fn(spec, ds, dev)
                steady = epochs > 1
                imgs = per_epoch * (epochs - steady)
                rate = imgs / (out["end"] - (first if steady else t0))
                rates[name].append(rate)
                extra[name] = out
                print(
                    f"  round {rnd + 1} {name:7s} {rate:10,.0f} images/s  "
                    f"(run {out['end'] - t0:.1f} s, val_acc {out.get('val_acc', float('nan')):.3f}"
                    + (f", compile_s {out['compile_s']:.1f}" if "compile_s" in out else "")
                    + ")",
                    flush=True,
                )
    svc, pln = max(rates["service"]), max(rates["plain"])
    paired = statistics.median(a / b for a, b in zip(rates["service"], rates["plain"], strict=True))
    print(f"service: {svc:,.0f} images/s")
    print(f"plain:   {pln:,.0f} images/s")
    print(
        f"ratio service/plain: {svc / pln:.3f} (target >= 0.95; median within rounds {paired:.3f})"
    )
    flops = window_flops_per_image(forward_flops_per_image(spec, ds), per_epoch, len(ds.val))
    peak, name = peak_flops(dev)
    if peak is None:
        print(
            f"MFU: unknown (no peak for {name}; --peak-tflops); {flops / 1e9:.3f} GFLOP "
            "per training image (forward + backward, evaluation included)"
        )
    else:
        print(
            f"MFU ({name}, bf16 dense peak {peak / 1e12:.0f} TFLOP/s, "
            f"{flops / 1e9:.3f} GFLOP per training image, evaluation included): "
            f"service {svc * flops / peak:.1%}, plain {pln * flops / peak:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
