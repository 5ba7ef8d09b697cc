"""The bookkeeping of a training run, and its checkpoint: what exact resume restores.

`RunState` is everything `tricks.train` tracks besides the model, optimizer,
grad scaler and RNGs: the position (next epoch, next batch, updates done), the
epoch's permutation and seed, the epoch's loss/accuracy sums, the
history, the latest metrics, the best epoch, early stopping and the time spent.
A checkpoint (`save_run`) holds all of it plus those four, in the format that
`tricks.checkpoint` writes and `tricks.fork` copies; `resume_run` puts it back.
`RunState.result` is what the run returns (`tricks.result.TrainResult`).

Checkpoints are only taken at log points, where nothing is pending on the
device, so a resumed run on the CPU reproduces the uninterrupted one bit for bit.
`run_snapshot` takes one as a CPU copy, which the loop writes in the background
(tricks.checkpoint_writer); `save_run` writes one at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tricks import checkpoint as ckpt
from tricks.checkpoint_writer import snapshot
from tricks.result import TrainResult
from tricks.spec import EarlyStoppingSpec, JobSpec


def record(history: dict, name: str, step: int, value: float) -> None:
    series = history.setdefault(name, {"step": [], "value": []})
    series["step"].append(step)
    series["value"].append(value)


@dataclass
class RunState:
    epoch: int = 0  # the next epoch (0-based): epochs completed
    batch: int = 0  # the next batch in it
    step: int = 0  # optimizer updates completed
    perm: torch.Tensor | None = None  # the epoch's batch order, once drawn
    epoch_seed: int | None = None  # the epoch's chunks draw from its streams (tricks.step)
    ep_loss: float = 0.0  # sums over the epoch's log intervals, on the host
    ep_correct: int = 0
    history: dict[str, dict[str, list]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=lambda: {"val_acc": None, "epoch": None})
    early: dict[str, Any] = field(default_factory=lambda: {"best": None, "bad_epochs": 0})
    stop_reason: str | None = None  # "early_stopping" once it ended the run
    elapsed_before: float = 0.0  # training seconds spent before this process resumed

    def log(self, t: int, lr: float, train_loss: float, train_acc: float) -> None:
        """Record a log point's values at step t; they become the latest metrics."""
        record(self.history, "lr", t, lr)
        record(self.history, "train_loss", t, train_loss)
        record(self.history, "train_acc", t, train_acc)
        self.metrics.update(lr=lr, train_loss=train_loss, train_acc=train_acc)

    def end_epoch(
        self, t: int, val: dict[str, float], spe: int, bs: int, es: EarlyStoppingSpec | None
    ) -> dict[str, float]:
        """Record the epoch (its last update is t) and update best and early stopping; its metrics."""
        ep = {"train_loss": self.ep_loss / spe, "train_acc": self.ep_correct / (spe * bs), **val}
        for name in ("val_loss", "val_acc", "val_ece"):
            record(self.history, name, t, ep[name])
        record(self.history, "epoch_train_loss", t, ep["train_loss"])
        record(self.history, "epoch_train_acc", t, ep["train_acc"])
        self.metrics.update(val)
        if self.best["val_acc"] is None or val["val_acc"] > self.best["val_acc"]:
            self.best = {"val_acc": val["val_acc"], "epoch": self.epoch}
        if es is not None:
            v, best = ep[es.metric], self.early["best"]
            if _improved(es.metric, v, best, es.min_delta):
                self.early = {"best": v, "bad_epochs": 0}
            else:
                self.early = {"best": best, "bad_epochs": self.early["bad_epochs"] + 1}
        return ep

    def next_epoch(self, es: EarlyStoppingSpec | None) -> None:
        """Move to the next epoch's start; early stopping ends the run once patience runs out."""
        self.epoch, self.batch, self.perm, self.epoch_seed = self.epoch + 1, 0, None, None
        self.ep_loss, self.ep_correct = 0.0, 0
        if es is not None and self.early["bad_epochs"] >= es.patience:
            self.stop_reason = "early_stopping"

    def result(
        self, status: str, error: dict | None, model: nn.Module, last_ckpt: Path | None
    ) -> TrainResult:
        """The run's TrainResult now: its metrics, history and the model's weights on the CPU."""
        return TrainResult(
            status=status,
            error=error,
            metrics=dict(self.metrics),
            best=dict(self.best),
            steps=self.step,
            epochs_run=self.epoch,
            history=self.history,
            model_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            stop_reason=self.stop_reason,
            checkpoint=str(last_ckpt) if last_ckpt is not None else None,
        )


def _improved(metric: str, value: float, best: float | None, min_delta: float) -> bool:
    if best is None:
        return True
    return value > best + min_delta if metric == "val_acc" else value < best - min_delta


def run_snapshot(
    st: RunState,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    gen: torch.Generator,
    spec: JobSpec,
    elapsed_s: float,
) -> dict[str, Any]:
    """The checkpoint of update `st.step`, as a copy on the CPU (tricks.checkpoint_writer.snapshot):
    the loop may go on training while it is written. The epoch's permutation (4 bytes a
    training row) is shared, not copied, on the CPU: nothing writes it in place (each epoch
    draws a new one), and for a table of 4 float32 features a copy is a quarter of its inputs."""
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": ckpt.rng_state(gen),
        "epoch": st.epoch,
        "batch": st.batch,
        "step": st.step,
        "perm": None,  # below
        "epoch_seed": st.epoch_seed,
        "ep_loss": st.ep_loss,
        "ep_correct": st.ep_correct,
        "history": st.history,
        "metrics": st.metrics,
        "best": st.best,
        "early": st.early,
        "stop_reason": st.stop_reason,
        "elapsed_s": elapsed_s,
        "spec": spec.model_dump_json(),
    }
    state = snapshot(state)
    state["perm"] = None if st.perm is None else st.perm.cpu()  # .cpu(): itself on the CPU
    return state


def save_run(
    directory: Path,
    st: RunState,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    gen: torch.Generator,
    spec: JobSpec,
    elapsed_s: float,
) -> Path:
    """Write the run's checkpoint for update `st.step` now (tricks.checkpoint: atomic, last two
    kept); the loop writes them in the background instead (tricks.checkpoint_writer)."""
    state = run_snapshot(st, model, opt, scaler, gen, spec, elapsed_s)
    return ckpt.save_checkpoint(state, directory, st.step)


def resume_run(
    directory: Path | None,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    gen: torch.Generator,
    device: torch.device,
) -> tuple[RunState, Path | None]:
    """(state, checkpoint) from the newest checkpoint in `directory` that loads, with the
    model, optimizer, scaler and RNG states restored; a fresh state and None if there is none."""
    found = ckpt.load_latest(directory)
    if found is None:
        return RunState(), None
    path, s = found
    model.load_state_dict(s["model"])
    opt.load_state_dict(s["optimizer"])
    if scaler is not None and s["scaler"]:
        scaler.load_state_dict(s["scaler"])
    ckpt.set_rng_state(s["rng"], gen)
    st = RunState(
        epoch=s["epoch"],
        batch=s["batch"],
        step=s["step"],
        perm=s["perm"].to(device) if s["perm"] is not None else None,
        epoch_seed=s.get("epoch_seed", s.get("mix_seed")),  # mix_seed: before the streams
        ep_loss=s["ep_loss"],
        ep_correct=s["ep_correct"],
        history=s["history"],
        metrics=s["metrics"],
        best=s["best"],
        early=s["early"],
        stop_reason=s["stop_reason"],
        elapsed_before=s["elapsed_s"],
    )
    return st, path
