"""The regularization and training sections, and the LR range test settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tricks.spec.base import MAX_BATCH, MAX_EPOCHS, SpecError, Strict

# ----------------------------------------------------------------- regularization


class MixupSpec(Strict):
    alpha: float = Field(
        0.2,
        gt=0.0,
        le=100.0,
        description="λ ~ Beta(α, α); 0.2 is usual, small α keeps λ near 0 or 1.",
    )
    prob: float = Field(1.0, ge=0.0, le=1.0, description="Probability that a batch is mixed.")


class CutMixSpec(Strict):
    alpha: float = Field(
        1.0,
        gt=0.0,
        le=100.0,
        description="λ ~ Beta(α, α) sets the kept area; 1.0 as in the CutMix paper. Images only.",
    )
    prob: float = Field(1.0, ge=0.0, le=1.0)


class AugmentSpec(Strict):
    hflip: bool = Field(
        False,
        description="Random horizontal flip (images only). Off for digits: a flipped 2 is not a 2.",
    )
    vflip: bool = Field(False, description="Random vertical flip (images only).")
    rotate: float = Field(
        0.0,
        ge=0.0,
        le=180.0,
        description="Rotate by a uniform angle in ±rotate degrees (images only).",
    )
    crop_padding: int = Field(
        0,
        ge=0,
        le=64,
        description="Zero-pad by this many pixels then random-crop back (images only).",
    )
    translate: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Shift by up to this fraction of the length (images and 1-D sequences).",
    )
    noise_std: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="Add Gaussian noise with this std, in standardized units (any data).",
    )

    def image_only_fields(self) -> list[str]:
        return [
            f
            for f, on in (
                ("hflip", self.hflip),
                ("vflip", self.vflip),
                ("rotate", self.rotate > 0),
                ("crop_padding", self.crop_padding > 0),
            )
            if on
        ]


class RegularizationSpec(Strict):
    l1: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="loss += l1·Σ|w| over weights with ndim ≥ 2. 1e-5 to 1e-4 is usual.",
    )
    l2: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="loss += l2·Σw² over weights with ndim ≥ 2 (explicit, apart from weight_decay).",
    )
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Inverted-dropout drop probability; 0.1–0.5. Where it sits depends on the "
        "arch: mlp after every hidden layer (before each dense layer but the first), cnn only "
        "before the last dense layer, resnet / resnet18 / resnet34 / preact_resnet18 / airbench "
        "before the classifier, wide_resnet between the two convs of every block (none before "
        "the classifier).",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Target (1−ε)·onehot + ε/K (torch's convention); 0.1 is usual.",
    )
    mixup: MixupSpec | None = Field(
        None,
        description="null for off. Under mixing, train_loss is against the mixed targets and "
        "train_acc counts the label with the larger λ share (see training.log_every).",
    )
    cutmix: CutMixSpec | None = Field(
        None,
        description="null for off. Images only. With mixup too, each batch picks one at random.",
    )
    augment: AugmentSpec | None = Field(None, description="null for off.")


# ----------------------------------------------------------------------- training


class EarlyStoppingSpec(Strict):
    metric: Literal["val_acc", "val_loss", "val_ece"] = "val_loss"
    patience: int = Field(
        5, ge=1, le=MAX_EPOCHS, description="Epochs without improvement before stopping."
    )
    min_delta: float = Field(0.0, ge=0.0, le=1e3)


class TrainingSpec(Strict):
    epochs: int = Field(20, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto` takes a GPU when the worker has one."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="`auto`: bf16 autocast on CUDA when supported, fp32 on CPU."
    )
    compile: bool = Field(
        False,
        description="Train through torch.compile (worth it on a GPU for long runs; the first "
        "step pays the compilation). Its time is reported as the final metric `compile_s`: the "
        "first step's time minus the second's. Evaluation and the LR range test run uncompiled.",
    )
    grad_clip: float | None = Field(
        None,
        gt=0.0,
        le=1e6,
        description="Clip the global gradient norm to this value; null for off.",
    )
    log_every: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Report train_loss, train_acc and lr every this many steps (one host sync "
        "each). train_loss is the mean cross-entropy against the targets the step trains on "
        "(label-smoothed and mixed when those are on), without the l1/l2 penalty; train_acc "
        "counts the training-mode predictions (dropout, augmentation) equal to the label, under "
        "mixup/CutMix the label with the larger share of the mixed target.",
    )
    early_stopping: EarlyStoppingSpec | None = None
    time_limit_s: float | None = Field(
        None,
        gt=0.0,
        le=7 * 24 * 3600,
        description="Wall-clock budget; past it the job checkpoints and fails with time_limit.",
    )
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        le=MAX_EPOCHS,
        description="Write a checkpoint at the end of every this many epochs (1: every epoch, "
        "so a fork can start from any epoch). null (the default): by wall time instead, see "
        "checkpoint_every_s. Either way a checkpoint is also written when the job is "
        "preempted or stopped by time_limit_s, and at its end (the last epoch, early stopping, "
        "stop_after_epochs).",
    )
    checkpoint_every_s: float = Field(
        30.0,
        gt=0.0,
        le=7 * 24 * 3600,
        description="With checkpoint_every null: checkpoint at the first epoch end at least "
        "this many seconds of training after the previous checkpoint, or at a log point "
        "mid-epoch once twice that has passed (long epochs). Checkpoints are written in the "
        "background from a copy taken at that step, so training does not wait for the disk.",
    )
    keep_checkpoints: Literal["last", "epochs"] = Field(
        "epochs",
        description="`epochs`: keep every checkpoint written at the end of an epoch (what POST "
        "/jobs/{id}/fork starts from; GET /jobs/{id}/checkpoints lists them): every "
        "checkpoint_every epochs, or with checkpoint_every null the epoch ends the time rule "
        "fell on and the last; `last`: only the newest two, for resume.",
    )
    stop_after_epochs: int | None = Field(
        None,
        ge=1,
        le=MAX_EPOCHS,
        description="Follow the schedule planned for `epochs` but stop after this many (a "
        "search's rung: the job ends succeeded with stop_reason `stop_after_epochs`, and a fork "
        "from that epoch goes on exactly as if it had never stopped).",
    )

    @model_validator(mode="after")
    def _stop_after(self) -> TrainingSpec:
        if self.stop_after_epochs is not None and self.stop_after_epochs > self.epochs:
            raise SpecError(
                ("stop_after_epochs",),
                f"stop_after_epochs ({self.stop_after_epochs}) is past training.epochs "
                f"({self.epochs})",
            )
        return self


class LRRangeSpec(Strict):
    min_lr: float = Field(1e-6, gt=0.0, le=100.0)
    max_lr: float = Field(10.0, gt=0.0, le=1000.0)
    steps: int = Field(100, ge=10, le=100_000)
    smoothing: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="EMA factor β of the live smoothed loss (and the stop rule); null scales it "
        "to the test, β = 1 − 16/steps (0.84 at 100 steps, 0.5 below 32), since fastai's fixed 0.98 lags ~50 "
        "steps. The suggestion reads a centred (lag-free) average over steps/8 points instead.",
    )
    diverge_factor: float = Field(
        4.0, gt=1.0, le=100.0, description="Stop when smoothed loss > this × the best loss."
    )

    @model_validator(mode="after")
    def _order(self) -> LRRangeSpec:
        if self.max_lr <= self.min_lr:
            raise SpecError(
                ("max_lr",), f"max_lr ({self.max_lr:g}) must be above min_lr ({self.min_lr:g})"
            )
        return self
