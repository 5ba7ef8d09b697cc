"""Datasets: the built-ins and stored uploads, split, with inputs kept in their stored dtype.

Built-ins are generated deterministically from a fixed seed (GEN_SEED), apart
from the split seed, so every job sees the same arrays. Uploads are read through
the process's cache of memory-mapped stored arrays (`tricks.data_cache`). The
train/val split is a permutation drawn from the job's seed (`split_index`);
standardization is fitted on the training split only (per channel for images
and sequences, per feature for tabular) and applied to both splits, so
validation statistics never leak into training.

Inputs stay in the dtype they are stored in: a uint8 image dataset is uint8 in
the worker's memory and on the device, and a split is an index into the one
(cached) array, not a copy of it. They become float32 a chunk of batches at a
time on the device (`Inputs.take`: x → (x − mean)/std, computed in float64 and
rounded once, exactly what `standardize` computes up front), so the uint8 path
and the float path give the same numbers bit for bit. Labels keep their stored
dtype too (uint8 for up to 256 classes) and the split's index is int32 below
2**31 rows (the values of the int64 permutation): on a narrow table, a few
float32 features a row, int64 bookkeeping would cost more than the data. Float data of at most
PRENORM_ELEMS numbers (the built-ins, small uploads) is standardized up front
instead, which saves that conversion in every step where steps are cheapest.

Built-in sources: digits is scikit-learn's copy of the UCI optical digits
(Alpaydin & Kaynak 1998); moons and blobs are scikit-learn generators; spirals
is the classic interleaved-spirals toy (Lang & Witbrock 1988), with 3 arms;
waves are synthetic sine/square/sawtooth signals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tricks.catalog import BUILTINS
from tricks.spec import DataSpec, split_sizes
from tricks.standardize import fit_stats, standardize  # noqa: F401  (standardize: its old home)
from tricks.uploads import kind_of

GEN_SEED = 20240601  # generation seed of the built-ins; never the split seed
PRENORM_ELEMS = 1 << 22  # float training splits this small are standardized up front
PRESENT_ELEMS = 1 << 18  # CPU: rows converted at once (a 2 MiB float64 temporary)


@dataclass
class Inputs:
    """The rows of one split as the model sees them: (src[index] − mean)/std, float32.

    `src` keeps its stored dtype and may be shared with the other split; `index`
    picks this split's rows (None: all of src); `mean`/`std` are float64 and
    broadcast over a batch (None: no scaling, x.float()). A float32 src without
    index or stats is what the model sees as it is (no op at all).
    """

    src: torch.Tensor
    index: torch.Tensor | None = None  # int32 (int64 past 2**31 rows), on src's device
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None

    def __len__(self) -> int:
        return int((self.src if self.index is None else self.index).shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.src.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        return self.src.dtype  # the stored dtype, not what take() returns

    def present(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of src as float32 inputs: in float64 then rounded once, as `standardize`.

        On the CPU a block of rows at a time (PRESENT_ELEMS numbers), so the float64
        temporary stays small next to the dataset; on a GPU in one go."""
        if self.mean is None or self.std is None:
            return x.float()  # a no-op for float32
        if x.device.type != "cpu" or x.numel() <= PRESENT_ELEMS:
            return self._scaled(x)
        out = torch.empty(x.shape, dtype=torch.float32)
        per = max(1, PRESENT_ELEMS // max(1, math.prod(x.shape[1:])))
        for lo in range(0, x.shape[0], per):
            out[lo : lo + per] = self._scaled(x[lo : lo + per])
        return out

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        assert self.mean is not None and self.std is not None
        t = x.double()  # x itself when float64 (maybe a view of src): then not in place
        t = t.sub(self.mean) if t is x else t.sub_(self.mean)
        return t.div_(self.std).float()

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        """The inputs at positions `rows` of the split (a gather; one more when indexed)."""
        # index_select: the same rows as src[rows], several times faster on the CPU
        at = rows if self.index is None else self.index.index_select(0, rows)
        return self.present(self.src.index_select(0, at))

    def rows(self, lo: int, hi: int) -> torch.Tensor:
        """The inputs at positions lo..hi−1 (a slice of src when it is not indexed)."""
        if self.index is None:
            return self.present(self.src[lo:hi])
        return self.present(self.src.index_select(0, self.index[lo:hi]))

    def materialize(self) -> torch.Tensor:
        """All of the split as one float32 tensor: for tests and tools, not the training loop."""
        return self.rows(0, len(self))

    def to(self, move: Callable[[torch.Tensor], torch.Tensor]) -> Inputs:
        return replace(
            self,
            src=move(self.src),
            index=None if self.index is None else move(self.index),
            mean=None if self.mean is None else move(self.mean),
            std=None if self.std is None else move(self.std),
        )


@dataclass
class Dataset:
    train: Inputs
    y_train: torch.Tensor  # (N,) integer labels in their stored dtype (uint8 for an upload)
    val: Inputs
    y_val: torch.Tensor
    num_classes: int
    kind: str  # "image" | "sequence" | "tabular"
    input_shape: tuple[int, ...]
    name: str

    @property
    def x_train(self) -> torch.Tensor:
        """The training inputs as float32, made on each access (the loop reads `train`)."""
        return self.train.materialize()

    @property
    def x_val(self) -> torch.Tensor:
        return self.val.materialize()

    def to(self, device: torch.device | str) -> Dataset:
        """On `device`: a source shared by both splits (one uploaded array) moves once."""
        moved: dict[int, torch.Tensor] = {}

        def move(t: torch.Tensor) -> torch.Tensor:
            if id(t) not in moved:
                moved[id(t)] = t.to(device)
            return moved[id(t)]

        return replace(
            self,
            train=self.train.to(move),
            y_train=move(self.y_train),
            val=self.val.to(move),
            y_val=move(self.y_val),
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
    """(x float32, y int64) of a built-in, identical on every call (fresh copies)."""
    x, y = _builtin(name)
    return x.copy(), y.copy()


@functools.cache
def _builtin(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Made once per process: digits alone takes ~20 ms (scikit-learn reads a CSV)."""
    x, y = _BUILDERS[name](np.random.default_rng(GEN_SEED))
    return np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


# -------------------------------------------------------------------- split, scale


def split_index(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, val rows) of a random split by `seed`, sizes from tricks.spec.split_sizes.

    The values of `default_rng(seed).permutation(n)` (it is arange(n) shuffled in place,
    the same draws for any integer dtype), as int32 when n < 2**31: 4 bytes a row, not 8,
    and no int64 temporary. Both are views of that one array."""
    _, n_val = split_sizes(n, val_fraction)
    perm = np.arange(n, dtype=index_dtype(n))
    np.random.default_rng(seed).shuffle(perm)
    return perm[n_val:], perm[:n_val]


def index_dtype(n: int) -> np.dtype:
    """The narrowest of int32/int64 that holds every row number below n (torch indexes with both)."""
    return np.dtype(np.int32 if n < 2**31 else np.int64)


def split(
    x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random train/val split by `seed`, with sizes from tricks.spec.split_sizes."""
    train, val = split_index(len(y), val_fraction, seed)
    return x[train], y[train], x[val], y[val]


# ----------------------------------------------------------------------- loading


def load_dataset(
    data: DataSpec, seed: int, upload_dir: Path | None = None, *, cache_bytes: int | None = None
) -> Dataset:
    """The dataset the spec names, split by `seed` (unless it ships x_val/y_val), on the CPU.

    Uploads come through the process's cache (`tricks.data_cache`, `cache_bytes` its size)."""
    name = data.dataset
    if name in BUILTINS:
        kind = BUILTINS[name][0]
        x, y = _builtin(name)  # shared, only read: the split and the scaling copy
        arrays = {"x": torch.from_numpy(x), "y": torch.from_numpy(y)}
        stats_cache: dict = {}
    else:
        if upload_dir is None:
            raise FileNotFoundError(f"dataset '{name}' is not built in and no upload_dir was given")
        from tricks.data_cache import stored_arrays

        stored = stored_arrays(Path(upload_dir), name, cache_bytes)
        arrays, stats_cache = stored.arrays, stored.stats
        kind = kind_of(arrays["x"].ndim)
    return _assemble(name, kind, arrays, data, seed, stats_cache)


def _assemble(
    name: str,
    kind: str,
    arrays: dict[str, torch.Tensor],
    data: DataSpec,
    seed: int,
    stats_cache: dict,
) -> Dataset:
    """Split, fit the statistics, and either standardize up front (small float data) or keep
    the stored dtype with the split as index tensors."""
    x, y = arrays["x"], arrays["y"]
    if "x_val" in arrays:
        ti = vi = None
        xv, split_key = arrays["x_val"], ("own",)
        yt, yv = y, arrays["y_val"]
    else:
        ti, vi = split_index(len(y), data.val_fraction, seed)
        xv, split_key = x, (data.val_fraction, seed)
        yt, yv = y.index_select(0, torch.from_numpy(ti)), y.index_select(0, torch.from_numpy(vi))
    x_np, xv_np = x.numpy(), xv.numpy()
    stats = None
    if data.standardize:
        if split_key not in stats_cache:
            stats_cache[split_key] = fit_stats(x_np, ti)
        stats = stats_cache[split_key]
    n_train = len(yt)
    if x.is_floating_point() and n_train * math.prod(x.shape[1:]) <= PRENORM_ELEMS:
        xt_np = x_np if ti is None else x_np[ti]
        xv_np = xv_np if vi is None else xv_np[vi]
        if stats is not None:  # what `standardize` computes
            xt_np, xv_np = ((xt_np - stats[0]) / stats[1]), ((xv_np - stats[0]) / stats[1])
        # copies (small): the cached arrays may be read-only memory maps
        train = Inputs(torch.from_numpy(np.array(xt_np, dtype=np.float32, order="C")))
        val = Inputs(torch.from_numpy(np.array(xv_np, dtype=np.float32, order="C")))
    else:
        mean = std = None
        if stats is not None:
            mean, std = torch.from_numpy(stats[0]), torch.from_numpy(stats[1])
        train = Inputs(x, None if ti is None else torch.from_numpy(ti), mean, std)
        val = Inputs(xv, None if vi is None else torch.from_numpy(vi), mean, std)
    top = max(int(yt.max()), int(yv.max()) if len(yv) else 0)
    return Dataset(
        train=train,
        y_train=yt,
        val=val,
        y_val=yv,
        num_classes=BUILTINS[name][2] if name in BUILTINS else top + 1,
        kind=kind,
        input_shape=tuple(int(s) for s in x.shape[1:]),
        name=name,
    )
