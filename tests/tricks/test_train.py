"""The training loop on real data (digits, CPU): accuracy, determinism, exact resume,
divergence / cancel / preempt / time limit / out of memory, the logged lr and
checkpoints. The step itself: test_step.py; the LR range test: test_lr_find.py;
ECE: test_evaluate.py; `python -m tricks run`: test_main.py."""

from __future__ import annotations

import math
import re

import pytest
import torch

import tricks.step as step_mod
import tricks.train as train_mod
from tricks import checkpoint as ckpt
from tricks.callbacks import Callbacks, CompositeCallbacks
from tricks.data import load_dataset
from tricks.schedules import lr_at
from tricks.spec import JobSpec, ScheduleSpec, steps_per_epoch
from tricks.train import train

# every trick that draws random numbers, so resume must restore every RNG
TRICKS = {
    "dropout": 0.2,
    "label_smoothing": 0.1,
    "l1": 1e-5,
    "mixup": {"alpha": 0.2},
    "augment": {"rotate": 10, "crop_padding": 1, "noise_std": 0.05},
}


def make_spec(**training) -> JobSpec:
    return JobSpec(
        data={"dataset": "digits"},
        model={"hidden": [64]},
        regularization=TRICKS,
        schedule={"warmup": {"epochs": 1}, "decay": {"kind": "cosine"}},
        training={"epochs": 3, "log_every": 5, **training},
    )


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_dataset(JobSpec(data={"dataset": "digits"}).data, seed=0)


def same_result(a, b) -> None:
    assert a.history == b.history  # floats compared exactly
    assert a.metrics == b.metrics
    assert a.best == b.best
    assert a.steps == b.steps and a.epochs_run == b.epochs_run
    assert a.model_state.keys() == b.model_state.keys()
    for k in a.model_state:
        assert torch.equal(a.model_state[k], b.model_state[k]), k


def expected_log_steps(spec: JobSpec, n_train: int) -> list[int]:
    spe = steps_per_epoch(n_train, spec.training.batch_size)
    total = spe * spec.training.epochs
    k = spec.training.log_every
    return [t for t in range(total) if (t + 1) % k == 0 or (t + 1) % spe == 0]


class StopAt(Callbacks):
    """Answer `request` at the n-th poll of should_stop (1-based)."""

    def __init__(self, n: int, request: str) -> None:
        self.n, self.request, self.polls = n, request, 0

    def should_stop(self):
        self.polls += 1
        return self.request if self.polls == self.n else None


class StopAfterEpoch(Callbacks):
    def __init__(self, epoch: int) -> None:
        self.epoch, self.seen = epoch, -1

    def on_epoch_end(self, epoch, step, metrics, progress):
        self.seen = epoch

    def should_stop(self):
        return "preempt" if self.seen == self.epoch else None


# ------------------------------------------------------------------ training


def test_default_mlp_learns_digits(digits):
    spec = JobSpec(data={"dataset": "digits"}, training={"epochs": 5})
    r = train(spec, digits)
    assert r.status == "succeeded" and r.error is None
    assert r.metrics["val_acc"] >= 0.9
    assert r.best["val_acc"] == max(r.history["val_acc"]["value"])
    assert r.epochs_run == 5 and r.steps == 5 * steps_per_epoch(len(digits.y_train), 64)
    assert 0.0 <= r.metrics["val_ece"] <= 1.0


def test_same_seed_same_history(digits):
    spec = make_spec(epochs=2)
    same_result(train(spec, digits), train(spec, digits))


def test_the_draws_do_not_depend_on_the_log_interval(digits, monkeypatch):
    # randomness is per chunk of the epoch, not per log interval: the same weights whatever
    # log_every is, with every random trick on and chunks that reads fall inside of
    monkeypatch.setattr(step_mod, "CHUNK_ELEMS", 64 * 64 * 8)  # chunks of 8 batches
    runs = [train(make_spec(epochs=2, log_every=k), digits) for k in (1, 5, 7, 1000)]
    for other in runs[1:]:
        assert other.metrics["val_loss"] == runs[0].metrics["val_loss"]
        for k in runs[0].model_state:
            assert torch.equal(other.model_state[k], runs[0].model_state[k]), k


def test_resume_after_epoch_end_equals_uninterrupted(digits, tmp_path):
    spec = make_spec()
    full = train(spec, digits)
    first = train(spec, digits, StopAfterEpoch(0), checkpoint_dir=tmp_path)
    assert first.status == "preempted" and first.epochs_run == 1
    starts = []

    class Start(Callbacks):
        def on_start(self, info):
            starts.append(info["resumed_from_step"])

    rest = train(spec, digits, Start(), checkpoint_dir=tmp_path)
    assert starts == [first.steps]
    assert rest.status == "succeeded"
    same_result(full, rest)


def test_resume_after_mid_epoch_preempt_equals_uninterrupted(digits, tmp_path):
    spec = make_spec()
    full = train(spec, digits)
    seen = []

    class Ckpt(Callbacks):
        def on_checkpoint(self, path, epoch, step):
            seen.append((path, epoch, step))

    first = train(
        spec, digits, CompositeCallbacks(StopAt(7, "preempt"), Ckpt()), checkpoint_dir=tmp_path
    )
    assert first.status == "preempted"
    path, epoch, step = seen[-1]
    state = ckpt.load_checkpoint(path)
    assert state["step"] == step == first.steps
    assert 0 < state["batch"] < steps_per_epoch(len(digits.y_train), 64)  # really mid-epoch
    rest = train(spec, digits, checkpoint_dir=tmp_path)
    same_result(full, rest)
    for name, series in rest.history.items():
        steps = series["step"]
        assert steps == sorted(set(steps)), name  # no duplicates, in order
    assert rest.history["train_loss"]["step"] == expected_log_steps(spec, len(digits.y_train))


def test_truncated_checkpoint_is_skipped_and_resume_still_exact(digits, tmp_path):
    spec = make_spec(checkpoint_every=1)
    full = train(spec, digits)
    train(spec, digits, StopAfterEpoch(1), checkpoint_dir=tmp_path)
    files = sorted(tmp_path.glob("ckpt-*.pt"))
    assert len(files) == 2  # keeps the last two
    newest, previous = files[-1], files[0]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # a torn final file
    (tmp_path / ".ckpt-000009999.pt.123.tmp").write_bytes(data[:100])  # a torn temp file
    assert ckpt.latest_checkpoint(tmp_path) == previous
    same_result(full, train(spec, digits, checkpoint_dir=tmp_path))


def test_checkpoint_loads_weights_only(digits, tmp_path):
    train(make_spec(epochs=2), digits, checkpoint_dir=tmp_path)
    path = ckpt.latest_checkpoint(tmp_path)
    state = torch.load(path, weights_only=True)  # no pickled code: tensors and primitives
    assert state["epoch"] == 2 and state["batch"] == 0 and "generator" in state["rng"]


def test_final_weights_round_trip_as_safetensors(digits, tmp_path):
    r = train(make_spec(epochs=2), digits)
    path = ckpt.save_model(r.model_state, tmp_path / "model.safetensors")
    back = ckpt.load_model(path)
    assert back.keys() == r.model_state.keys()
    assert all(torch.equal(back[k], r.model_state[k]) for k in back)


def test_divergence_fails_with_step_and_lr(digits):
    spec = JobSpec(
        data={"dataset": "digits"},
        model={"hidden": [64], "batch_norm": True},  # plain ReLU nets die instead of going NaN
        optimizer={"name": "sgd", "lr": 100.0},
        schedule={"decay": {"kind": "constant"}},
        training={"epochs": 3, "log_every": 5},
    )
    r = train(spec, digits)
    assert r.status == "failed" and r.error["type"] == "diverged"
    m = re.fullmatch(r"diverged at step (\d+) \(lr = (\S+)\)", r.error["message"])
    assert m, r.error["message"]
    assert int(m.group(1)) == r.steps - 1
    assert float(m.group(2)) == pytest.approx(100.0)
    assert not math.isfinite(r.history["train_loss"]["value"][-1])


def test_cancel_at_first_log_point(digits):
    r = train(make_spec(), digits, StopAt(1, "cancel"))
    assert r.status == "cancelled" and r.error is None
    assert r.steps == 5 and r.history["train_loss"]["step"] == [4]


def test_time_limit_checkpoints_and_fails(digits, tmp_path):
    r = train(make_spec(time_limit_s=1e-6), digits, checkpoint_dir=tmp_path)
    assert r.status == "failed" and r.error["type"] == "time_limit"
    assert ckpt.latest_checkpoint(tmp_path) is not None


@pytest.mark.parametrize(
    "schedule",
    [
        {"warmup": {"epochs": 1}, "decay": {"kind": "cosine"}},
        {"warmup": {"epochs": 1, "start_lr": 0.01}, "decay": {"kind": "step", "step_epochs": 2}},
        {"warmup": {"epochs": 1}, "decay": {"kind": "linear"}, "per": "epoch"},
        {"decay": {"kind": "onecycle"}},
    ],
)
def test_logged_lr_is_the_schedule_and_the_optimizer_lr(digits, monkeypatch, schedule):
    spec = make_spec(log_every=3).model_copy(update={"schedule": ScheduleSpec(**schedule)})
    opts = []
    real = train_mod.build_optimizer
    monkeypatch.setattr(
        train_mod, "build_optimizer", lambda o, m: opts.append(real(o, m)) or opts[-1]
    )
    logged = []

    class Spy(Callbacks):
        def on_log(self, step, metrics, progress):
            groups = {g["lr"] for g in opts[0].param_groups}
            logged.append((step, metrics["lr"], groups))

    r = train(spec, digits, Spy())
    spe = steps_per_epoch(len(digits.y_train), 64)
    assert [s for s, _, _ in logged] == expected_log_steps(spec, len(digits.y_train))
    for step, lr, groups in logged:
        want = lr_at(step, lr0=0.05, schedule=spec.schedule, steps_per_epoch=spe, epochs=3)
        assert lr == want and groups == {want}
    assert r.history["lr"]["value"] == [lr for _, lr, _ in logged]


def test_early_stopping_stops_and_resume_does_not_restart(digits, tmp_path):
    spec = JobSpec(
        data={"dataset": "digits"},
        model={"hidden": [64]},
        training={
            "epochs": 30,
            "early_stopping": {"metric": "val_acc", "patience": 1, "min_delta": 0.5},
        },
    )
    r = train(spec, digits, checkpoint_dir=tmp_path)
    assert r.status == "succeeded" and r.stop_reason == "early_stopping"
    assert r.epochs_run == 2  # epoch 0 sets the best; nothing beats it by 0.5
    again = train(spec, digits, checkpoint_dir=tmp_path)
    assert again.epochs_run == 2 and again.history == r.history


def test_out_of_memory_fails_with_type_oom(digits, monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(step_mod, "augment_batch", no_memory)  # as the CUDA allocator would
    r = train(make_spec(), digits)
    assert r.status == "failed" and r.error["type"] == "oom"
    assert "batch_size" in r.error["message"]


def test_large_logit_buffers_fall_back_to_per_step_argmax(digits, monkeypatch):
    spec = make_spec(epochs=2).model_copy(
        update={"regularization": JobSpec(data={"dataset": "digits"}).regularization}
    )
    kept = train(spec, digits)
    monkeypatch.setattr(step_mod, "LOGIT_BUFFER", 0)
    same_result(kept, train(spec, digits))
