"""The job spec: what a user POSTs to /jobs and what `python -m tricks run` reads.

Pydantic v2 models shared by the API (validation at the edge) and the worker
(trusted input). No torch import here: the API process must stay torch-free.

Every number is bounded and finite; unknown fields are rejected. Checks that
need the dataset (its size, shape, kind, number of classes) live in
`check_against_dataset`, which the API calls once it knows the dataset.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_EPOCHS = 1000
MAX_BATCH = 65536


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


class SpecError(ValueError):
    """A cross-field problem found outside pydantic, with the field path it concerns."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc = loc
        self.msg = msg


# --------------------------------------------------------------------------- data


class DataSpec(Strict):
    dataset: str = Field(
        min_length=1,
        max_length=64,
        description="Built-in name (`digits`, `moons`, `spirals`, `blobs`, `waves`) or the id of an uploaded dataset (GET /datasets lists both).",
    )
    val_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=0.9,
        description="Share of the data held out for validation when the dataset has no x_val/y_val. 0.1–0.2 is usual.",
    )
    standardize: bool = Field(
        True, description="Standardize features with mean/std fitted on the training split only."
    )


# -------------------------------------------------------------------------- model


class MLPSpec(Strict):
    arch: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1, le=8192)]] = Field(
        default_factory=lambda: [256, 128],
        max_length=16,
        description="Widths of the hidden layers. Inputs of any shape are flattened.",
    )
    batch_norm: bool = Field(
        True,
        description="BatchNorm after each hidden linear layer (on by default: digits reaches ≥ 97% on every seed).",
    )


class CNNSpec(Strict):
    arch: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        max_length=8,
        description="Output channels of each conv block. (C,L) inputs use Conv1d, (C,H,W) use Conv2d.",
    )
    kernel_size: int = Field(
        3, ge=1, le=15, description="Odd sizes keep the spatial size ('same' padding)."
    )
    hidden: int = Field(
        128, ge=1, le=8192, description="Width of the dense layer before the classifier."
    )
    batch_norm: bool = Field(True, description="BatchNorm after each convolution.")


class ResNetSpec(Strict):
    arch: Literal["resnet"] = "resnet"
    width: int = Field(
        32, ge=4, le=512, description="Channels of the first stage; each stage doubles it."
    )
    blocks: list[Annotated[int, Field(ge=1, le=16)]] = Field(
        default_factory=lambda: [1, 1],
        min_length=1,
        max_length=4,
        description="Residual blocks per stage; stages after the first downsample by 2.",
    )
    zero_init_residual: bool = Field(
        True,
        description="Zero-init the last BatchNorm gamma in each block so every block starts as the identity (Bag of Tricks).",
    )


ModelSpec = Annotated[MLPSpec | CNNSpec | ResNetSpec, Field(discriminator="arch")]


# ---------------------------------------------------------------------- optimizer


class _OptBase(Strict):
    weight_decay: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="torch semantics: coupled (added to the gradient) for sgd/adam, decoupled for adamw.",
    )
    no_bias_decay: bool = Field(
        True,
        description="Exempt biases and normalization parameters from weight decay (Bag of Tricks).",
    )


class SGDSpec(_OptBase):
    name: Literal["sgd"] = "sgd"
    lr: float = Field(
        0.05,
        gt=0.0,
        le=100.0,
        description="Peak learning rate lr0. 0.1 × batch/256 is the linear-scaling rule.",
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = Field(
        5e-4, ge=0.0, le=1.0, description="Coupled L2 added to the gradient; 5e-4 to 1e-4 is usual."
    )

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDSpec:
        if self.nesterov and self.momentum == 0:
            raise SpecError(
                ("nesterov",),
                "nesterov needs momentum > 0: set momentum (e.g. 0.9) or nesterov false",
            )
        return self


class AdamSpec(_OptBase):
    name: Literal["adam"] = "adam"
    lr: float = Field(
        1e-3, gt=0.0, le=100.0, description="Peak learning rate; 1e-3 is Adam's usual default."
    )
    betas: tuple[
        Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]
    ] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0, le=1.0)


class AdamWSpec(AdamSpec):
    name: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: float = Field(
        0.01, ge=0.0, le=1.0, description="Decoupled weight decay (AdamW); 0.01–0.1 is usual."
    )


OptimizerSpec = Annotated[SGDSpec | AdamSpec | AdamWSpec, Field(discriminator="name")]


# ----------------------------------------------------------------------- schedule


class WarmupSpec(Strict):
    epochs: float | None = Field(
        None, gt=0.0, le=MAX_EPOCHS, description="Warm-up length in epochs (give epochs or steps)."
    )
    steps: int | None = Field(
        None, ge=1, le=10_000_000, description="Warm-up length in optimizer steps."
    )
    start_lr: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="lr before the first step; the first batch uses start_lr + (lr0-start_lr)/m.",
    )

    @model_validator(mode="after")
    def _one_length(self) -> WarmupSpec:
        if (self.epochs is None) == (self.steps is None):
            raise SpecError(("epochs",), "give exactly one of warmup.epochs or warmup.steps")
        return self


class ConstantDecay(Strict):
    kind: Literal["constant"] = "constant"


class StepDecay(Strict):
    kind: Literal["step"] = "step"
    step_epochs: int = Field(
        30,
        ge=1,
        le=MAX_EPOCHS,
        description="Multiply the lr by gamma every this many epochs (torch StepLR).",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0)


class MultiStepDecay(Strict):
    kind: Literal["multistep"] = "multistep"
    milestones: list[Annotated[int, Field(ge=1, le=MAX_EPOCHS)]] = Field(
        min_length=1,
        max_length=64,
        description="Epochs at which the lr is multiplied by gamma (torch MultiStepLR), increasing.",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _increasing(self) -> MultiStepDecay:
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            raise SpecError(
                ("milestones",), "milestones must be strictly increasing, e.g. [30, 60, 80]"
            )
        return self


class CosineDecay(Strict):
    kind: Literal["cosine"] = "cosine"
    min_lr: float = Field(0.0, ge=0.0, le=100.0, description="lr at the end of the decay.")


class LinearDecay(Strict):
    kind: Literal["linear"] = "linear"
    min_lr: float = Field(0.0, ge=0.0, le=100.0)


class ExponentialDecay(Strict):
    kind: Literal["exponential"] = "exponential"
    gamma: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="Multiplier per epoch (applied smoothly per batch in batch mode).",
    )


class OneCycleDecay(Strict):
    kind: Literal["onecycle"] = "onecycle"
    pct_start: float = Field(
        0.3, gt=0.0, lt=1.0, description="Share of training spent rising to lr0 (torch OneCycleLR)."
    )
    div_factor: float = Field(25.0, ge=1.0, le=1e6, description="Initial lr = lr0 / div_factor.")
    final_div_factor: float = Field(
        1e4, ge=1.0, le=1e9, description="Final lr = initial lr / final_div_factor."
    )


class CosineRestartsDecay(Strict):
    kind: Literal["cosine_restarts"] = "cosine_restarts"
    t0_epochs: float = Field(
        10.0, gt=0.0, le=MAX_EPOCHS, description="Length of the first cycle in epochs (SGDR T_0)."
    )
    t_mult: int = Field(
        1, ge=1, le=10, description="Each cycle is t_mult times longer than the one before."
    )
    min_lr: float = Field(0.0, ge=0.0, le=100.0)


class PolynomialDecay(Strict):
    kind: Literal["polynomial"] = "polynomial"
    power: float = Field(1.0, gt=0.0, le=10.0)
    min_lr: float = Field(0.0, ge=0.0, le=100.0)


class InverseSqrtDecay(Strict):
    kind: Literal["inverse_sqrt"] = "inverse_sqrt"
    timescale_steps: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="lr0·sqrt(s/(u+s)); 0 means s = the warm-up length (or 1 without warm-up), as in the Transformer schedule.",
    )


class WSDDecay(Strict):
    kind: Literal["wsd"] = "wsd"
    decay_fraction: float = Field(
        0.2,
        gt=0.0,
        le=1.0,
        description="Share of the post-warm-up steps spent in the final linear cool-down.",
    )
    min_lr: float = Field(0.0, ge=0.0, le=100.0)


DecaySpec = Annotated[
    ConstantDecay
    | StepDecay
    | MultiStepDecay
    | CosineDecay
    | LinearDecay
    | ExponentialDecay
    | OneCycleDecay
    | CosineRestartsDecay
    | PolynomialDecay
    | InverseSqrtDecay
    | WSDDecay,
    Field(discriminator="kind"),
]


class ScheduleSpec(Strict):
    warmup: WarmupSpec | None = Field(
        None, description="Linear warm-up before the decay; null for none."
    )
    decay: DecaySpec = Field(default_factory=CosineDecay)
    per: Literal["batch", "epoch"] = Field(
        "batch",
        description="`batch`: the lr changes every optimizer step; `epoch`: once per epoch (torch's per-epoch scheduler.step()).",
    )

    @model_validator(mode="after")
    def _coherent(self) -> ScheduleSpec:
        w = self.warmup
        if w is not None and self.per == "epoch":
            if w.steps is not None:
                raise SpecError(
                    ("warmup", "steps"),
                    "schedule.per is 'epoch': give warmup.epochs, not warmup.steps",
                )
            if w.epochs is not None and w.epochs != int(w.epochs):
                raise SpecError(
                    ("warmup", "epochs"),
                    "schedule.per is 'epoch': warmup.epochs must be a whole number",
                )
        if w is not None and isinstance(self.decay, OneCycleDecay):
            raise SpecError(
                ("warmup",), "onecycle has its own warm-up (pct_start): remove schedule.warmup"
            )
        return self


def _decay_min_lr(decay: object) -> float | None:
    return getattr(decay, "min_lr", None)


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
        description="Inverted-dropout drop probability before each dense layer; 0.1–0.5.",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Target (1−ε)·onehot + ε/K (torch's convention); 0.1 is usual.",
    )
    mixup: MixupSpec | None = Field(None, description="null for off.")
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
        description="Report train loss and lr every this many steps (one host sync each).",
    )
    early_stopping: EarlyStoppingSpec | None = None
    time_limit_s: float | None = Field(
        None,
        gt=0.0,
        le=7 * 24 * 3600,
        description="Wall-clock budget; past it the job checkpoints and fails with time_limit.",
    )
    checkpoint_every: int = Field(
        1, ge=1, le=MAX_EPOCHS, description="Write a checkpoint every this many epochs."
    )
    keep_checkpoints: Literal["last", "epochs"] = Field(
        "epochs",
        description="`epochs`: keep every end-of-epoch checkpoint (what POST /jobs/{id}/fork "
        "starts from); `last`: only the newest two, for resume.",
    )


class LRRangeSpec(Strict):
    min_lr: float = Field(1e-6, gt=0.0, le=100.0)
    max_lr: float = Field(10.0, gt=0.0, le=1000.0)
    steps: int = Field(100, ge=10, le=100_000)
    smoothing: float = Field(
        0.98, ge=0.0, lt=1.0, description="EMA factor for the smoothed loss (fastai uses 0.98)."
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


# ---------------------------------------------------------------------- whole spec


class JobSpec(Strict):
    name: str = Field("", max_length=200)
    task: Literal["train", "lr_range_test"] = "train"
    data: DataSpec
    model: ModelSpec = Field(default_factory=MLPSpec)
    optimizer: OptimizerSpec = Field(default_factory=SGDSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    lr_range: LRRangeSpec | None = Field(None, description="Only for task lr_range_test.")

    @model_validator(mode="before")
    @classmethod
    def _default_tags(cls, data: Any) -> Any:
        """Let users omit the union tags: a bare optimizer is sgd, a bare model mlp, a bare decay cosine."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section, tag, default in (("optimizer", "name", "sgd"), ("model", "arch", "mlp")):
            if isinstance(data.get(section), dict) and tag not in data[section]:
                data[section] = {tag: default, **data[section]}
        sched = data.get("schedule")
        if (
            isinstance(sched, dict)
            and isinstance(sched.get("decay"), dict)
            and "kind" not in sched["decay"]
        ):
            data["schedule"] = {**sched, "decay": {"kind": "cosine", **sched["decay"]}}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> JobSpec:
        check_schedule(self.schedule, lr0=self.optimizer.lr, epochs=self.training.epochs)
        if self.task == "lr_range_test" and self.lr_range is None:
            self.lr_range = LRRangeSpec()
        if self.task == "train" and self.lr_range is not None:
            raise SpecError(
                ("lr_range",),
                "lr_range is only for task 'lr_range_test'; set task or remove lr_range",
            )
        return self


def check_schedule(
    schedule: ScheduleSpec,
    *,
    lr0: float,
    epochs: int,
    steps_per_epoch: int | None = None,
    lr_name: str = "optimizer.lr",
) -> None:
    """Raise SpecError (loc under "schedule") when the schedule does not fit the run.

    Shared by JobSpec, the dataset checks (which know steps_per_epoch) and POST
    /schedules/preview (whose lr field is plain `lr`).
    """
    w, d = schedule.warmup, schedule.decay
    total = None if steps_per_epoch is None else steps_per_epoch * epochs
    if w is not None and w.epochs is not None and w.epochs >= epochs:
        raise SpecError(
            ("schedule", "warmup", "epochs"),
            f"schedule.warmup ({w.epochs:g} epochs) is as long as or longer than training "
            f"({epochs} epochs): shorten the warm-up or train longer",
        )
    if w is not None and w.steps is not None and total is not None and w.steps >= total:
        raise SpecError(
            ("schedule", "warmup", "steps"),
            f"warm-up ({w.steps} steps) is as long as or longer than training ({total} steps = "
            f"{epochs} epochs × {steps_per_epoch} batches): shorten it or train longer",
        )
    if w is not None and w.start_lr > lr0:
        raise SpecError(
            ("schedule", "warmup", "start_lr"),
            f"schedule.warmup.start_lr ({w.start_lr:g}) is above {lr_name} ({lr0:g}): warm-up must rise",
        )
    if isinstance(d, MultiStepDecay) and d.milestones[-1] >= epochs:
        raise SpecError(
            ("schedule", "decay", "milestones"),
            f"schedule.decay.milestones has {d.milestones[-1]}, past the last epoch ({epochs - 1}): "
            f"milestones must be below the number of epochs ({epochs})",
        )
    if isinstance(d, StepDecay) and d.step_epochs >= epochs:
        raise SpecError(
            ("schedule", "decay", "step_epochs"),
            f"schedule.decay.step_epochs ({d.step_epochs}) ≥ the number of epochs ({epochs}): "
            f"the lr would never decay",
        )
    min_lr = _decay_min_lr(d)
    if min_lr is not None and min_lr > lr0:
        raise SpecError(
            ("schedule", "decay", "min_lr"),
            f"schedule.decay.min_lr ({min_lr:g}) is above {lr_name} ({lr0:g}): set min_lr below it",
        )


# ------------------------------------------------------- checks that need the data


class DatasetMeta(BaseModel):
    """What the API knows about a dataset without loading it (stored at upload)."""

    id: str
    name: str = ""
    kind: Literal["image", "sequence", "tabular"]
    input_shape: list[int]
    num_classes: int
    n_train: int
    n_val: int
    builtin: bool = False


def split_sizes(n: int, val_fraction: float) -> tuple[int, int]:
    """(n_train, n_val) for a dataset without its own validation split."""
    n_val = max(1, int(round(n * val_fraction)))
    return n - n_val, n_val


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Batches per epoch; the last, partial batch is dropped unless it is the only one."""
    return max(1, n_train // batch_size)


def check_against_dataset(spec: JobSpec, meta: DatasetMeta) -> None:
    """Raise SpecError for what only the dataset can tell: augmentations, sizes, warm-up in steps."""
    reg = spec.regularization
    if meta.kind != "image":
        if reg.augment is not None:
            bad = reg.augment.image_only_fields()
            if bad:
                raise SpecError(
                    ("regularization", "augment", bad[0]),
                    f"{', '.join(bad)} only apply to images, and dataset '{meta.id}' is {meta.kind} "
                    f"(shape {meta.input_shape}); use translate or noise_std instead",
                )
        if reg.cutmix is not None:
            raise SpecError(
                ("regularization", "cutmix"),
                f"cutmix only applies to images, and dataset '{meta.id}' is {meta.kind}; use mixup instead",
            )
        if reg.augment is not None and meta.kind == "tabular" and reg.augment.translate > 0:
            raise SpecError(
                ("regularization", "augment", "translate"),
                f"translate needs images or 1-D sequences, and dataset '{meta.id}' is tabular; use noise_std",
            )
    if spec.model.arch in ("cnn", "resnet") and meta.kind == "tabular":
        raise SpecError(
            ("model", "arch"),
            f"{spec.model.arch} needs (C,L) or (C,H,W) inputs, and dataset '{meta.id}' is tabular "
            f"(shape {meta.input_shape}); use arch 'mlp'",
        )
    n_train = meta.n_train
    if spec.training.batch_size > n_train:
        raise SpecError(
            ("training", "batch_size"),
            f"batch_size ({spec.training.batch_size}) is larger than the training split ({n_train} samples)",
        )
    spe = steps_per_epoch(n_train, spec.training.batch_size)
    check_schedule(
        spec.schedule, lr0=spec.optimizer.lr, epochs=spec.training.epochs, steps_per_epoch=spe
    )


def dataset_meta_after_split(meta: DatasetMeta, val_fraction: float) -> DatasetMeta:
    """Meta for datasets stored without a validation split (n_val == 0): apply val_fraction."""
    if meta.n_val > 0:
        return meta
    n_train, n_val = split_sizes(meta.n_train, val_fraction)
    return meta.model_copy(update={"n_train": n_train, "n_val": n_val})


_TAGGED = {
    "optimizer": {"sgd", "adam", "adamw"},
    "model": {"mlp", "cnn", "resnet"},
    "decay": {
        "constant",
        "step",
        "multistep",
        "cosine",
        "linear",
        "exponential",
        "onecycle",
        "cosine_restarts",
        "polynomial",
        "inverse_sqrt",
        "wsd",
    },
}


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Flatten a ValidationError into [{loc, msg, type}], moving SpecError paths into loc.

    Cross-field validators raise SpecError with a path relative to the model they
    check; pydantic reports them at that model, so the two paths are joined here.
    """
    out = []
    for e in exc.errors(include_url=False):
        # pydantic puts the union tag in the path (optimizer.adam.lr); users think optimizer.lr
        loc = [
            p
            for i, p in enumerate(e["loc"])
            if not (i > 0 and e["loc"][i - 1] in _TAGGED and p in _TAGGED[e["loc"][i - 1]])
        ]
        msg = e["msg"]
        err = (e.get("ctx") or {}).get("error")
        if isinstance(err, SpecError):
            loc += list(err.loc)
            msg = err.msg
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append({"loc": loc, "msg": msg, "type": e["type"]})
    return out
