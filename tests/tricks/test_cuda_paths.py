"""The CUDA-only code paths, run on the CPU where they can be, and on CUDA where there is one.

On the CPU: the host-sync checker (tricks.host_sync) against calls known to sync and
known not to; a read of the Stepper is one sync and its steps none, with every trick,
bf16 autocast, channels_last and the masks of CUDA's dropout path (a torch generator on
the tensor's device: tricks.models.layers.HOST_BITS_DEVICES emptied); a mid-epoch resume
through those paths is exact; device and precision choice (a GPU that only emulates
bf16; CUDA asked for where there is none); a checkpoint whose data generator is of the
other device kind resumes. The CUDA tests skip without a GPU (as in test_device.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tricks.device as device_mod
import tricks.models.layers as layers_mod
import tricks.step as step_mod
from tricks import checkpoint as ckpt
from tricks.callbacks import Callbacks
from tricks.data import load_dataset
from tricks.host_sync import HostSyncError, count_host_syncs, no_host_sync
from tricks.models import build_model
from tricks.regularization import build_optimizer
from tricks.spec import JobSpec, steps_per_epoch
from tricks.step import Stepper
from tricks.train import train

CUDA = torch.cuda.is_available()
TRICKS = {
    "dropout": 0.2,
    "label_smoothing": 0.1,
    "l1": 1e-5,
    "mixup": {"alpha": 0.4},
    "cutmix": {"alpha": 1.0},
    "augment": {"crop_padding": 1, "hflip": True, "rotate": 10, "noise_std": 0.05},
}


def spec_for(device: str = "cpu", **training) -> JobSpec:
    return JobSpec(
        data={"dataset": "digits"},
        model={"arch": "cnn", "channels": [4], "hidden": 16},
        regularization=TRICKS,
        schedule={"warmup": {"epochs": 1}, "decay": {"kind": "cosine"}},
        training={"epochs": 2, "batch_size": 64, "log_every": 5, "grad_clip": 5.0,
                  "device": device, **training},
    )  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_dataset(JobSpec(data={"dataset": "digits"}).data, seed=0)


@pytest.fixture()
def cuda_paths(monkeypatch):
    """channels_last and the device-generator dropout masks, as on CUDA, here on the CPU."""
    monkeypatch.setattr(device_mod, "CHANNELS_LAST_DEVICES", frozenset({"cuda", "cpu"}))
    monkeypatch.setattr(layers_mod, "HOST_BITS_DEVICES", frozenset())


class StopAt(Callbacks):
    def __init__(self, n: int) -> None:
        self.n, self.polls = n, 0

    def should_stop(self):
        self.polls += 1
        return "preempt" if self.polls == self.n else None


# ---------------------------------------------------------------- the checker itself


def test_the_checker_catches_what_syncs_on_cuda_and_nothing_else():
    t, mask = torch.arange(6.0), torch.tensor([True, False] * 3)
    syncing = [
        lambda: t.sum().item(),
        lambda: t.tolist(),
        lambda: bool(t.sum() > 0),  # an `if` on a tensor
        lambda: int(t[0]),
        lambda: float(t.max()),
        lambda: f"{t.sum()}",  # printing / formatting
        lambda: t.nonzero(),
        lambda: t[mask],  # a boolean mask: a nonzero
        lambda: torch.masked_select(t, mask),
        lambda: torch.unique(t),
        lambda: torch.tensor([1.0, 2.0]),  # host data: a copy to the device
        lambda: t.cpu(),
    ]
    for call in syncing:
        with pytest.raises(HostSyncError), no_host_sync(torch.device("cpu")):
            call()
    with no_host_sync(torch.device("cpu")):  # the ordinary ops of a step
        u = torch.where(t > 2, t, 0.0) * 2
        u = u.index_select(0, torch.arange(2))[torch.arange(2)]  # an int64 index: a gather
        torch.randperm(6, generator=torch.Generator().manual_seed(0))
        torch.as_tensor(u)  # from a tensor: no host data
        assert u.shape == (2,) and len(u) == 2  # shapes are host values already


# ---------------------------------------------------------------- the step's syncs


def stepper_on(data, spec: JobSpec, amp=None) -> Stepper:
    torch.manual_seed(0)
    model = build_model(spec.model, data.input_shape, data.num_classes, 0.2)
    model = device_mod.place_model(model, torch.device("cpu"))
    opt = build_optimizer(spec.optimizer, model)
    gen = torch.Generator().manual_seed(0)
    return Stepper(spec, data, model, opt, None, gen, amp, read_every=spec.training.log_every)


def test_a_read_is_one_host_sync(digits):
    # before: .item() of the loss and int() of the hits, two syncs a log interval
    spec = spec_for()
    s = stepper_on(digits, spec)
    s.start_epoch(None, None)
    for i in range(5):
        s.step(0.05, i, i)
    with count_host_syncs() as seen:
        loss_sum, correct, rows = s.read()
    assert seen == ["tolist"]
    assert rows == 5 and 0 <= correct <= 5 * 64 and isinstance(correct, int)
    assert np.isfinite(loss_sum) and loss_sum > 0


def test_steps_make_no_host_sync_on_the_cuda_paths(digits, cuda_paths, monkeypatch):
    """Every trick, bf16 autocast (CPU's), channels_last, device-generator masks: after a
    warm-up interval (first-call caches), the steps of an interval call nothing that syncs."""
    monkeypatch.setattr(step_mod, "CHUNK_ELEMS", 3 * 64 * 64)  # chunks of 3 batches
    spec = spec_for()
    s = stepper_on(digits, spec, amp=torch.autocast("cpu", dtype=torch.bfloat16))
    assert s.memory_format is torch.channels_last and s.dropouts  # really those paths
    s.start_epoch(None, None)
    for i in range(5):
        s.step(0.05, i, i)
    s.read()
    with no_host_sync(torch.device("cpu")):
        for i in range(5, 15):  # across chunk boundaries (new streams, new mask plans)
            s.step(0.05, i, i)
    assert s.chunk_batches == 3 and s.b0 == 12  # it did cross them
    assert s.xc.is_contiguous(memory_format=torch.channels_last)
    with count_host_syncs() as seen:
        loss_sum, _, rows = s.read()
    assert seen == ["tolist"] and rows == 10 and np.isfinite(loss_sum)


def test_device_generator_masks_are_a_function_of_the_seed():
    """CUDA's mask path (a torch generator on the tensor's device), run on the CPU."""
    dev = torch.device("cpu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layers_mod, "HOST_BITS_DEVICES", frozenset())
        a = layers_mod.keep_mask((256, 64), 0.25, dev, 7)
        b = layers_mod.keep_mask((256, 64), 0.25, dev, 7)
        c = layers_mod.keep_mask((256, 64), 0.25, dev, 8)
    host = layers_mod.keep_mask((256, 64), 0.25, dev, 7)  # numpy's PCG64: other bits
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, host)
    assert set(a.unique().tolist()) == {0.0, float(torch.tensor(1 / 0.75))}  # float32
    kept = float((a > 0).float().mean())  # 16,384 draws: within 4 standard deviations
    assert abs(kept - 0.75) < 4 * (0.75 * 0.25 / a.numel()) ** 0.5


# ---------------------------------------------------------------- exact resume


def test_mid_epoch_resume_is_exact_on_the_cuda_paths(digits, cuda_paths, tmp_path, monkeypatch):
    monkeypatch.setattr(step_mod, "CHUNK_ELEMS", 4 * 64 * 64)  # the stop (step 15) is mid-chunk
    spec = spec_for()
    full = train(spec, digits)
    first = train(spec, digits, StopAt(3), checkpoint_dir=tmp_path)
    spe = steps_per_epoch(len(digits.y_train), 64)
    assert first.status == "preempted" and 0 < first.steps % spe  # really mid-epoch
    assert first.steps == 15 and first.steps % 4  # and mid-chunk
    rest = train(spec, digits, checkpoint_dir=tmp_path)
    assert rest.history == full.history  # floats compared exactly
    for k, w in full.model_state.items():
        assert torch.equal(rest.model_state[k], w), k


def test_channels_last_trains_as_contiguous(digits, monkeypatch):
    """Same run in NHWC: the same numbers up to the kernels' summation order."""
    spec = spec_for()
    plain = train(spec, digits)
    monkeypatch.setattr(device_mod, "CHANNELS_LAST_DEVICES", frozenset({"cuda", "cpu"}))
    nhwc = train(spec, digits)
    for name in ("train_loss", "val_loss"):
        np.testing.assert_allclose(
            nhwc.history[name]["value"], plain.history[name]["value"], rtol=1e-3
        )


# ---------------------------------------------------------------- device and precision


def test_auto_precision_is_fp32_where_bf16_is_only_emulated(monkeypatch):
    """A T4/V100: torch emulates bf16 (far slower than fp32); an H200: bf16 in hardware."""
    cuda = torch.device("cuda", 0)

    def emulated_only(including_emulation: bool = True) -> bool:
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulated_only)
    assert device_mod.pick_precision("auto", cuda) == "fp32"
    assert device_mod.pick_precision("bf16", cuda) == "bf16"  # asked for: as asked
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert device_mod.pick_precision("auto", cuda) == "bf16"


@pytest.mark.skipif(CUDA, reason="checks the error raised where there is no CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="training.device is 'cuda' but this worker sees no"):
        device_mod.pick_device("cuda")
    assert device_mod.pick_device("auto") == torch.device("cpu")


# ---------------------------------------------------------------- resume across devices


def cuda_generator_state(seed: int, offset: int) -> torch.Tensor:
    """What a CUDA generator's get_state() returns: its seed (uint64) and Philox offset (int64)."""
    return torch.from_numpy(np.array([seed, offset], dtype=np.int64).view(np.uint8).copy())


def test_a_checkpoint_from_the_other_device_kind_resumes(digits, tmp_path):
    """A `device: auto` job preempted on a GPU worker and claimed next by a CPU one (or the
    other way round): its data generator's state does not fit this device's generator. The
    run goes on from the checkpoint's position (before: RuntimeError, on every retry)."""
    spec = spec_for()
    full = train(spec, digits)
    first = train(spec, digits, StopAt(3), checkpoint_dir=tmp_path)
    path = ckpt.latest_checkpoint(tmp_path)
    state = ckpt.load_checkpoint(path)
    state["rng"]["generator"] = cuda_generator_state(0, 4 * first.steps)  # as if from CUDA
    state.pop("format")
    ckpt.save_checkpoint(state, tmp_path, first.steps)
    rest = train(spec, digits, checkpoint_dir=tmp_path)
    assert rest.status == "succeeded" and rest.steps == full.steps
    assert rest.history["train_loss"]["step"] == full.history["train_loss"]["step"]
    # the interrupted epoch keeps its permutation and seed: exact up to its end
    spe = steps_per_epoch(len(digits.y_train), 64)
    upto = full.history["train_loss"]["step"].index(spe - 1) + 1
    assert rest.history["train_loss"]["value"][:upto] == full.history["train_loss"]["value"][:upto]


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_a_cuda_checkpoint_resumes_on_the_cpu(digits, tmp_path):
    spec = spec_for(device="auto")
    first = train(spec, digits, StopAt(3), checkpoint_dir=tmp_path)  # on CUDA
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert state["rng"]["generator"].numel() == 16  # a CUDA generator's
    rest = train(spec, digits, checkpoint_dir=tmp_path, device="cpu")
    assert first.status == "preempted" and rest.status == "succeeded"


# ---------------------------------------------------------------- on CUDA itself


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_steps_with_every_trick_make_no_host_sync(digits, precision, monkeypatch):
    monkeypatch.setattr(step_mod, "CHUNK_ELEMS", 3 * 64 * 64)  # chunks of 3 batches
    dev = torch.device("cuda")
    spec = spec_for(device="cuda", precision=precision)
    data = digits.to(dev)
    torch.manual_seed(0)
    model = device_mod.place_model(build_model(spec.model, data.input_shape, 10, 0.2), dev)
    opt = build_optimizer(spec.optimizer, model)
    assert opt.defaults["fused"]  # every parameter on one CUDA device, floating point
    gen = torch.Generator(device=dev).manual_seed(0)
    scaler = device_mod.grad_scaler(dev, precision)
    s = Stepper(spec, data, model, opt, scaler, gen, device_mod.autocast(dev, precision), 5)
    s.start_epoch(None, None)
    for i in range(5):
        s.step(0.05, i, i)
    s.read()
    with no_host_sync(dev):
        for i in range(5, 15):
            s.step(0.05, i, i)
    loss_sum, _, rows = s.read()
    assert rows == 10 and np.isfinite(loss_sum)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_mid_epoch_resume_matches_the_uninterrupted_run(digits, tmp_path):
    """Steps and lrs exactly; the values as close as two identical CUDA runs are."""
    spec = spec_for(device="cuda")
    full, again = train(spec, digits), train(spec, digits)
    train(spec, digits, StopAt(3), checkpoint_dir=tmp_path)
    rest = train(spec, digits, checkpoint_dir=tmp_path)
    for name, series in full.history.items():
        assert rest.history[name]["step"] == series["step"], name
    assert rest.history["lr"] == full.history["lr"]
    noise = max(
        float((full.model_state[k].double() - again.model_state[k].double()).abs().max())
        for k in full.model_state
    )
    for k, w in full.model_state.items():
        diff = float((rest.model_state[k].double() - w.double()).abs().max())
        assert diff <= 10 * noise + 1e-6, k
