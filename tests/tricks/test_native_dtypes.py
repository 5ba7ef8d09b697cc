"""uint8 images stay uint8 (in memory and on the device) and train exactly as the same data in
float32: the per-chunk conversion (x − mean)/std on the device gives the float path's numbers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

import tricks.data as data_mod
from tricks.data import load_dataset
from tricks.models import build_model
from tricks.spec import JobSpec, RegularizationSpec
from tricks.step import Stepper
from tricks.train import train

N, C, H, W, K = 320, 3, 8, 8, 4


def images() -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose class brightens one quadrant of one channel, over the full 0..255 range."""
    rng = np.random.default_rng(7)
    y = np.arange(N) % K
    x = rng.integers(0, 160, (N, C, H, W))
    for k in range(K):
        r, c = divmod(k, 2)
        x[y == k, k % C, r * 4 : r * 4 + 4, c * 4 : c * 4 + 4] += 95
    return x.astype(np.uint8), y


def store(root: Path, name: str, **arrays: np.ndarray) -> None:
    """The stored layout the API writes: {id}/x.npy, y.npy, plain .npy files."""
    (root / name).mkdir()
    for key, a in arrays.items():
        np.save(root / name / f"{key}.npy", a)


@pytest.fixture()
def stored(tmp_path: Path) -> Path:
    x, y = images()
    store(tmp_path, "u8", x=x, y=y.astype(np.uint8))
    store(tmp_path, "f32", x=x.astype(np.float32), y=y.astype(np.int64))
    return tmp_path


def spec_for(dataset: str, standardize: bool = True) -> JobSpec:
    return JobSpec(
        data={"dataset": dataset, "standardize": standardize},
        model={"arch": "cnn", "channels": [8], "hidden": 16},
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
        regularization={
            "augment": {"crop_padding": 2, "hflip": True, "noise_std": 0.1},
            "mixup": {"alpha": 0.4},
            "label_smoothing": 0.1,
        },
        training={"epochs": 3, "batch_size": 32, "log_every": 3, "device": "cpu", "seed": 5},
    )


def assert_same_run(a, b) -> None:
    assert a.status == b.status == "succeeded"
    assert a.history.keys() == b.history.keys()
    for name, curve in a.history.items():
        assert curve["step"] == b.history[name]["step"], name
        np.testing.assert_allclose(curve["value"], b.history[name]["value"], rtol=1e-4, atol=1e-7)
    assert a.metrics.keys() == b.metrics.keys()
    for name, v in a.metrics.items():
        assert v == pytest.approx(b.metrics[name], rel=1e-4, abs=1e-7), name
    for key, w in a.model_state.items():
        torch.testing.assert_close(w, b.model_state[key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("standardize", [True, False])
def test_uint8_trains_as_float32(stored: Path, standardize: bool) -> None:
    u8 = load_dataset(
        spec_for("u8").data.model_copy(update={"standardize": standardize}), 5, stored
    )
    f32 = load_dataset(
        spec_for("f32").data.model_copy(update={"standardize": standardize}), 5, stored
    )
    assert u8.train.dtype == torch.uint8 and u8.val.dtype == torch.uint8  # not converted
    assert u8.train.src is u8.val.src  # one array; the split is an index into it
    assert u8.y_train.dtype == torch.uint8 and u8.train.index.dtype == torch.int32  # compact
    r8 = train(spec_for("u8", standardize), u8)
    r32 = train(spec_for("f32", standardize), f32)
    assert_same_run(r8, r32)
    assert r8.metrics["val_acc"] > 0.5  # it learned something: the check is not vacuous


def test_float32_through_the_per_chunk_path_too(stored: Path, monkeypatch) -> None:
    """Large float data is not standardized up front either: the same numbers again."""
    ref = train(spec_for("f32"), load_dataset(spec_for("f32").data, 5, stored))
    monkeypatch.setattr(data_mod, "PRENORM_ELEMS", 0)
    ds = load_dataset(spec_for("f32").data, 5, stored)
    assert ds.train.index is not None and ds.train.mean is not None  # really per chunk
    assert_same_run(train(spec_for("f32"), ds), ref)


def test_the_stepper_gathers_uint8_and_standardizes_each_chunk(stored: Path) -> None:
    spec = spec_for("u8").model_copy(update={"regularization": RegularizationSpec()})
    ds = load_dataset(spec.data, 5, stored).to("cpu")
    model = build_model(spec.model, ds.input_shape, ds.num_classes, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    stepper = Stepper(spec, ds, model, opt, None, gen, None, read_every=3)
    assert stepper.X.dtype == torch.uint8
    perm, _ = stepper.start_epoch(None, None)
    stepper.step(0.01, 0, 0)
    # the oracle: the job's training rows (seeded permutation, val first), their float64
    # per-channel statistics, and the chunk's rows standardized with them
    x, _ = images()
    n_val = round(N * 0.2)
    train_rows = np.random.default_rng(5).permutation(N)[n_val:]
    xt = x[train_rows].astype(np.float64)
    mean = xt.mean(axis=(0, 2, 3), keepdims=True)
    std = xt.std(axis=(0, 2, 3), keepdims=True)
    expected = (xt[perm[: stepper.n_chunk * 32].numpy()] - mean) / std
    assert stepper.xc.dtype == torch.float32
    np.testing.assert_allclose(stepper.xc.numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_uint8_stays_uint8_on_the_gpu(stored: Path) -> None:
    ds = load_dataset(spec_for("u8").data, 5, stored).to("cuda")
    assert ds.train.src.dtype == torch.uint8 and ds.train.src.is_cuda
    assert ds.train.src is ds.val.src  # moved once
    assert ds.train.take(torch.arange(4, device="cuda")).dtype == torch.float32


@pytest.mark.service
def test_uploaded_uint8_images_train_in_the_worker_as_float32_here(service, stored: Path) -> None:
    """Upload → stored uint8 → a real worker's job; the same spec trained here on the float32
    copy gives the same final metrics: the uint8 path end to end."""
    from support import submit, wait_done

    x, y = images()
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y.astype(np.uint8))
    spec = spec_for("f32").model_dump(mode="json")  # device cpu: the same numbers as here
    with service.client() as c:
        r = c.post("/datasets", files={"file": ("u8img.npz", buf.getvalue())})
        assert r.status_code == 201, r.text
        meta = r.json()
        stored_x = np.load(service.artifact_dir / "datasets" / meta["id"] / "x.npy", mmap_mode="r")
        assert stored_x.dtype == np.uint8  # stored natively, not as float32
        spec["data"]["dataset"] = meta["id"]
        done = wait_done(c, submit(c, spec)["id"])
    assert done["status"] == "succeeded", done
    here = train(spec_for("f32"), load_dataset(spec_for("f32").data, 5, stored))
    for name in ("train_loss", "val_loss", "val_acc"):
        assert done["metrics"][name] == pytest.approx(here.metrics[name], rel=1e-4), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_steps_make_no_host_sync_between_reads(stored: Path) -> None:
    """uint8 gather, on-device standardization, channels_last and bf16 steps: no sync until
    read() (torch raises on any synchronizing call in "error" mode)."""
    from tricks.device import autocast, place_model

    spec = spec_for("u8").model_copy(update={"regularization": RegularizationSpec()})
    dev = torch.device("cuda")
    ds = load_dataset(spec.data, 5, stored).to(dev)
    model = place_model(build_model(spec.model, ds.input_shape, ds.num_classes, 0.0), dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator(device=dev).manual_seed(0)
    amp = autocast(dev, "bf16")
    stepper = Stepper(spec, ds, model, opt, None, gen, amp, read_every=3)
    assert stepper.memory_format is torch.channels_last and stepper.X.dtype == torch.uint8
    stepper.start_epoch(None, None)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(3):
            stepper.step(0.01, step, step)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stepper.xc.is_contiguous(memory_format=torch.channels_last)
    loss_sum, _, rows = stepper.read()
    assert rows == 3 and np.isfinite(loss_sum)
