"""When the training loop checkpoints (training.checkpoint_every / checkpoint_every_s), and
the background writer: copies taken at the step, errors raised on the training thread,
exact resume from a time-based checkpoint. Real files, real training on digits (CPU)."""

from __future__ import annotations

import threading
import time
import types

import pytest
import torch

import tricks.train as train_mod
from tricks import checkpoint as ckpt
from tricks.callbacks import Callbacks, CompositeCallbacks
from tricks.checkpoint_writer import CheckpointWriter, snapshot
from tricks.data import load_dataset
from tricks.pinned import pinned_path
from tricks.spec import JobSpec, steps_per_epoch
from tricks.train import train

from .test_checkpoint_faults import small_disk  # noqa: F401 - the fixture: a 256 KiB tmpfs


def make_spec(**training) -> JobSpec:
    return JobSpec(
        data={"dataset": "digits"},
        model={"hidden": [64]},
        regularization={"dropout": 0.1, "mixup": {"alpha": 0.2}},
        training={"epochs": 3, "log_every": 5, **training},
    )


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_dataset(JobSpec(data={"dataset": "digits"}).data, seed=0)


def same_result(a, b) -> None:
    assert a.history == b.history and a.metrics == b.metrics and a.steps == b.steps
    for k in a.model_state:
        assert torch.equal(a.model_state[k], b.model_state[k]), k


class Seen(Callbacks):
    def __init__(self) -> None:
        self.ckpts: list[tuple[int, int]] = []  # (epoch, step) of each finished checkpoint
        self.threads: set[str] = set()

    def on_checkpoint(self, path, epoch, step):
        assert path.is_file()  # complete on disk when reported
        self.ckpts.append((epoch, step))
        self.threads.add(threading.current_thread().name)


class SyncWriter(CheckpointWriter):
    """Never busy when asked (it waits instead): makes the time rule deterministic."""

    def busy(self) -> bool:
        if self._thread is not None:
            self._thread.join()
        return False


class Clock(Callbacks):
    """A fake monotonic clock for tricks.train that moves 1 s at every log point."""

    def __init__(self) -> None:
        self.now = 0.0

    def on_log(self, step, metrics, progress):
        self.now += 1.0


def with_clock(monkeypatch, clock: Clock) -> None:
    fake = types.SimpleNamespace(monotonic=lambda: clock.now, perf_counter=time.perf_counter)
    monkeypatch.setattr(train_mod, "time", fake)
    monkeypatch.setattr(train_mod, "CheckpointWriter", SyncWriter)


def test_default_checkpoints_only_at_the_end_and_pins_it(digits, tmp_path):
    spec = make_spec()
    assert spec.training.checkpoint_every is None and spec.training.checkpoint_every_s == 30.0
    seen = Seen()
    r = train(spec, digits, seen, checkpoint_dir=tmp_path)
    spe = steps_per_epoch(len(digits.y_train), 64)
    assert r.status == "succeeded" and seen.ckpts == [(3, 3 * spe)]
    assert [p.name for p in tmp_path.glob("ckpt-*.pt")] == [f"ckpt-{3 * spe:09d}.pt"]
    assert sorted(p.name for p in (tmp_path / "epochs").iterdir()) == ["epoch-00003.pt"]
    assert seen.threads == {threading.main_thread().name}  # callbacks on the training thread
    same_result(train(spec, digits), r)  # checkpointing changes nothing in the run


def test_explicit_checkpoint_every_writes_each_nth_epoch(digits, tmp_path):
    seen = Seen()
    train(make_spec(epochs=4, checkpoint_every=2), digits, seen, checkpoint_dir=tmp_path)
    spe = steps_per_epoch(len(digits.y_train), 64)
    assert seen.ckpts == [(2, 2 * spe), (4, 4 * spe)]
    assert sorted(p.name for p in (tmp_path / "epochs").iterdir()) == [
        "epoch-00002.pt",
        "epoch-00004.pt",
    ]


def test_time_rule_takes_epoch_ends_when_epochs_are_short(digits, tmp_path, monkeypatch):
    # 22 updates per epoch, log points every 5 updates and at each epoch's end: the clock
    # reads 1..5 s at them in epoch 0 (5, 10, 15, 20, 22), 6..10 s in epoch 1 (25 .. 44),
    # 11..16 s in epoch 2 (45 .. 65, 66). Epoch ends are 5 s apart (≥ 2.6); mid-epoch
    # needs 5.2 s, which update 65 (5 s after 44) does not reach.
    clock = Clock()
    with_clock(monkeypatch, clock)
    seen = Seen()
    spec = make_spec(checkpoint_every_s=2.6)
    train(spec, digits, CompositeCallbacks(clock, seen), checkpoint_dir=tmp_path)
    assert steps_per_epoch(len(digits.y_train), 64) == 22
    assert seen.ckpts == [(1, 22), (2, 44), (3, 66)]
    assert sorted(p.name for p in (tmp_path / "epochs").iterdir()) == [
        "epoch-00001.pt",
        "epoch-00002.pt",
        "epoch-00003.pt",
    ]
    assert len(list(tmp_path.glob("ckpt-*.pt"))) == 2  # the rolling set: the newest two


def test_time_rule_goes_mid_epoch_after_twice_the_interval(digits, tmp_path, monkeypatch):
    # log points every 2 updates (11 per epoch), the clock 1 s at each: 4 s for an epoch end,
    # 8 s mid-epoch. Epoch 0: 8 s at update 16, its end 3 s later (no); epoch 1: 8 s more at
    # update 32, its end (44) 6 s later (yes); epoch 2: 8 s more at update 60; the end (66).
    clock = Clock()
    with_clock(monkeypatch, clock)
    seen = Seen()
    spec = make_spec(checkpoint_every_s=4.0, log_every=2)
    train(spec, digits, CompositeCallbacks(clock, seen), checkpoint_dir=tmp_path)
    assert seen.ckpts == [(0, 16), (1, 32), (2, 44), (2, 60), (3, 66)]
    assert sorted(p.name for p in (tmp_path / "epochs").iterdir()) == [
        "epoch-00002.pt",
        "epoch-00003.pt",
    ]


def test_resume_from_a_time_based_checkpoint_equals_uninterrupted(digits, tmp_path, monkeypatch):
    spec = make_spec(checkpoint_every_s=2.5)
    full = train(spec, digits)
    clock = Clock()
    with_clock(monkeypatch, clock)

    class Crash(Callbacks):  # the process dies after epoch 1's checkpoint (as kill -9 would)
        def on_epoch_end(self, epoch, step, metrics, progress):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(spec, digits, CompositeCallbacks(clock, Crash()), checkpoint_dir=tmp_path)
    path = ckpt.latest_checkpoint(tmp_path)
    spe = steps_per_epoch(len(digits.y_train), 64)
    assert path == ckpt.checkpoint_path(tmp_path, spe)  # epoch 0's end, written in the background
    monkeypatch.undo()
    same_result(full, train(spec, digits, checkpoint_dir=tmp_path))


def test_fork_point_from_the_time_rule_is_a_full_checkpoint(digits, tmp_path, monkeypatch):
    clock = Clock()
    with_clock(monkeypatch, clock)
    train(make_spec(checkpoint_every_s=2.5), digits, clock, checkpoint_dir=tmp_path)
    state = ckpt.load_checkpoint(pinned_path(tmp_path, 1))
    spe = steps_per_epoch(len(digits.y_train), 64)
    assert (state["epoch"], state["batch"], state["step"]) == (1, 0, spe)
    assert len(state["history"]["val_acc"]["value"]) == 1  # the history as it was then


# ------------------------------------------------------------------- the writer


def test_snapshot_is_a_copy_the_loop_may_go_on_mutating():
    w = torch.ones(3)
    state = {"model": {"w": w}, "history": {"x": {"step": [1], "value": [0.5]}}, "n": 2}
    snap = snapshot(state)
    w.add_(1.0)
    state["history"]["x"]["step"].append(2)
    assert torch.equal(snap["model"]["w"], torch.ones(3))
    assert snap["history"] == {"x": {"step": [1], "value": [0.5]}} and snap["n"] == 2


def test_writer_reports_done_on_the_calling_thread(tmp_path):
    done = []
    writer = CheckpointWriter(tmp_path, lambda *a: done.append((*a, threading.current_thread())))
    path = writer.submit({"model": {"w": torch.ones(2)}}, step=7, epoch=1, pin_epochs=1)
    writer.wait()
    assert done == [(path, 1, 7, threading.current_thread())]
    assert ckpt.load_checkpoint(path)["model"]["w"].tolist() == [1.0, 1.0]
    assert pinned_path(tmp_path, 1).read_bytes() == path.read_bytes()
    writer.wait()  # nothing in flight: a no-op
    assert len(done) == 1


def test_writer_raises_a_background_error_on_the_next_wait(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer = CheckpointWriter(blocker / "sub")
    writer.submit({"model": {}}, step=1, epoch=0)
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()  # raised once
    writer.submit({"model": {}}, step=2, epoch=0)
    writer.close()  # joins, raises nothing


def test_a_full_disk_in_a_background_write_fails_the_run_with_disk_full(
    digits,
    small_disk,  # noqa: F811
):
    # about 160 kB per checkpoint (weights + momentum of an MLP [256]): the second does not fit
    spec = JobSpec(
        data={"dataset": "digits"},
        model={"hidden": [256]},
        training={"epochs": 4, "checkpoint_every": 1, "keep_checkpoints": "last"},
    )
    with pytest.raises(ckpt.DiskFull) as info:
        train(spec, digits, checkpoint_dir=small_disk)
    assert info.value.what.startswith("ckpt-") and "/" not in str(info.value)
    assert not any(p.name.endswith(".tmp") for p in small_disk.iterdir())
