"""Checks that need the dataset (its kind, shape, size, classes), and split arithmetic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tricks.spec.base import SpecError
from tricks.spec.image_archs import IMAGE_ARCHS
from tricks.spec.job import JobSpec, check_schedule

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
    # Added with the stored layout; defaults keep older records valid.
    dtype: str = "float32"  # x's stored dtype
    stored_bytes: int = 0
    class_counts: list[int] = Field(default_factory=list)  # train + val, per class
    classes: list[str] = Field(default_factory=list)  # class names when known (image folders)
    # True: x_val/y_val were uploaded. False: no own split; n_train/n_val show the split of
    # the default val_fraction and a job splits n_train + n_val by its own. None: an older
    # record, where n_val == 0 means no own split.
    own_val: bool | None = None


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
    check_model_input(spec, meta)
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


def check_model_input(spec: JobSpec, meta: DatasetMeta) -> None:
    """The image-only archs need (C, H, W) images; airbench's 2×2 stem needs H, W ≥ 2."""
    arch, shape = spec.model.arch, meta.input_shape
    if arch in IMAGE_ARCHS and (meta.kind != "image" or len(shape) != 3):
        raise SpecError(
            ("model", "arch"),
            f"{arch} takes (C,H,W) images, and dataset '{meta.id}' is {meta.kind} "
            f"(shape {shape}); use arch 'mlp', 'cnn' or 'resnet'",
        )
    if arch == "airbench" and min(shape[1:]) < 2:
        raise SpecError(
            ("model", "arch"),
            f"airbench's 2×2 stem needs images of at least 2×2, and dataset '{meta.id}' has "
            f"shape {shape}; use arch 'resnet18' or 'cnn'",
        )


def dataset_meta_after_split(meta: DatasetMeta, val_fraction: float) -> DatasetMeta:
    """Meta for datasets stored without a validation split (n_val == 0): apply val_fraction."""
    if meta.own_val or (meta.own_val is None and meta.n_val > 0):
        return meta
    n_train, n_val = split_sizes(meta.n_train + meta.n_val, val_fraction)
    return meta.model_copy(update={"n_train": n_train, "n_val": n_val})
