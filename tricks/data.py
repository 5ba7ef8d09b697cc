"""In-memory datasets: the built-ins and uploaded .npz files, split and standardized.

Built-ins are generated deterministically from a fixed seed (GEN_SEED), apart
from the split seed, so every job sees the same arrays. The train/val split is a
permutation drawn from the job's seed; standardization is fitted on the training
split only (per channel for images and sequences, per feature for tabular) and
applied to both splits, so validation statistics never leak into training.

Built-in sources: digits is scikit-learn's copy of the UCI optical digits
(Alpaydin & Kaynak 1998); moons and blobs are scikit-learn generators; spirals
is the classic interleaved-spirals toy (Lang & Witbrock 1988), with 3 arms;
waves are synthetic sine/square/sawtooth signals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tricks.catalog import BUILTINS
from tricks.spec import DataSpec, split_sizes
from tricks.uploads import kind_of

GEN_SEED = 20240601  # generation seed of the built-ins; never the split seed


@dataclass
class Dataset:
    x_train: torch.Tensor  # float32 (N, *input_shape)
    y_train: torch.Tensor  # int64 (N,)
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    kind: str  # "image" | "sequence" | "tabular"
    input_shape: tuple[int, ...]
    name: str

    def to(self, device: torch.device | str) -> Dataset:
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_val=self.x_val.to(device),
            y_val=self.y_val.to(device),
        )


# ---------------------------------------------------------------------- built-ins


def _digits(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0)[:, None, :, :], d.target


def _moons(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    return make_moons(n_samples=1000, noise=0.2, random_state=GEN_SEED % 2**32)


def _blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=1000, n_features=8, centers=4, cluster_std=2.0, random_state=GEN_SEED % 2**32
    )
    return x, y


def _spirals(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    arms, per_arm = 3, 500
    t = np.sqrt(rng.uniform(0.0, 1.0, (arms, per_arm)))  # denser towards the rim
    theta = 2 * np.pi * np.arange(arms)[:, None] / arms + 3 * np.pi * t
    theta = theta + rng.normal(0.0, 0.2, theta.shape)
    x = np.stack([t * np.cos(theta), t * np.sin(theta)], axis=-1).reshape(-1, 2)
    return x, np.repeat(np.arange(arms), per_arm)


def _waves(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    per_class, length = 400, 64
    y = np.repeat(np.arange(3), per_class)
    n = len(y)
    t = np.arange(length) / length
    cycles = rng.uniform(1.0, 4.0, (n, 1))
    phase = rng.uniform(0.0, 1.0, (n, 1))
    u = cycles * t + phase  # in cycles
    sine = np.sin(2 * np.pi * u)
    square = np.sign(sine)
    saw = 2 * (u - np.floor(u)) - 1
    x = np.where(y[:, None] == 0, sine, np.where(y[:, None] == 1, square, saw))
    x = x * rng.uniform(0.5, 1.5, (n, 1)) + rng.normal(0.0, 0.3, x.shape)
    return x[:, None, :], y


_BUILDERS = {
    "digits": _digits,
    "moons": _moons,
    "spirals": _spirals,
    "blobs": _blobs,
    "waves": _waves,
}


def builtin_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) of a built-in, identical on every call."""
    x, y = _BUILDERS[name](np.random.default_rng(GEN_SEED))
    return np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


# -------------------------------------------------------------------- split, scale


def split(
    x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random train/val split by `seed`, with sizes from tricks.spec.split_sizes."""
    _, n_val = split_sizes(len(y), val_fraction)
    perm = np.random.default_rng(seed).permutation(len(y))
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train], x[val], y[val]


def standardize(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x − mean)/std with stats from x_train: per channel (axis 1) for rank > 2, else per feature."""
    axes = (0,) if x_train.ndim == 2 else (0, *range(2, x_train.ndim))
    mean = x_train.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x_train.std(axis=axes, keepdims=True, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)  # constant features stay put
    return (
        ((x_train - mean) / std).astype(np.float32),
        ((x_val - mean) / std).astype(np.float32),
    )


# ----------------------------------------------------------------------- loading


def load_dataset(data: DataSpec, seed: int, upload_dir: Path | None = None) -> Dataset:
    """The dataset the spec names, split by `seed` (unless it ships x_val/y_val), on the CPU."""
    name = data.dataset
    if name in BUILTINS:
        kind, _, num_classes, _, _ = BUILTINS[name]
        x, y = builtin_arrays(name)
        xt, yt, xv, yv = split(x, y, data.val_fraction, seed)
    else:
        if upload_dir is None:
            raise FileNotFoundError(f"dataset '{name}' is not built in and no upload_dir was given")
        path = Path(upload_dir) / f"{name}.npz"
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        x = arrays["x"].astype(np.float32)
        y = arrays["y"].astype(np.int64)
        kind = kind_of(x.ndim)
        if "x_val" in arrays:
            xt, yt = x, y
            xv = arrays["x_val"].astype(np.float32)
            yv = arrays["y_val"].astype(np.int64)
        else:
            xt, yt, xv, yv = split(x, y, data.val_fraction, seed)
        num_classes = int(max(yt.max(), yv.max() if len(yv) else 0)) + 1
    if data.standardize:
        xt, xv = standardize(xt, xv)
    return Dataset(
        x_train=torch.from_numpy(np.ascontiguousarray(xt)),
        y_train=torch.from_numpy(np.ascontiguousarray(yt)),
        x_val=torch.from_numpy(np.ascontiguousarray(xv)),
        y_val=torch.from_numpy(np.ascontiguousarray(yv)),
        num_classes=num_classes,
        kind=kind,
        input_shape=tuple(int(s) for s in xt.shape[1:]),
        name=name,
    )
