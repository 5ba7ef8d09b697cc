"""Standardization statistics, fitted on a training split: per channel or per feature.

`fit_stats` gives the mean and std (float64) that `standardize` applies,
(x − mean)/std computed in float64 and rounded to float32 once. For a split of
at most EXACT_ELEMS numbers they are numpy's own `mean`/`std` of the gathered
split, as they always were (so small datasets keep their results bit for bit).
A larger split (an uploaded image set) is read a block of rows at a time, so no
temporary grows with the dataset: numpy's `std` would make a float64 copy of it,
8× the size of uint8 images. Integer data is summed exactly there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

EXACT_ELEMS = 1 << 22  # statistics of at most this many numbers: numpy's own, as always
BLOCK_ELEMS = 1 << 18  # numbers per block above it (int64/float64 temporaries of 2 MiB)


def _axes(ndim: int) -> tuple[int, ...]:
    return (0,) if ndim == 2 else (0, *range(2, ndim))


def fit_stats(x: np.ndarray, index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """mean, std (float64, keepdims) of x[index]: per channel (axis 1) for rank > 2, else per
    feature; a constant feature gets std 1 so it stays put."""
    axes, rows = _axes(x.ndim), len(x) if index is None else len(index)
    if rows * math.prod(x.shape[1:]) <= EXACT_ELEMS:
        xt = np.asarray(x) if index is None else x[index]
        mean = xt.mean(axis=axes, keepdims=True, dtype=np.float64)
        std = xt.std(axis=axes, keepdims=True, dtype=np.float64)
    else:
        mean, std = _blockwise_stats(x, index, axes)
    return mean, np.where(std < 1e-8, 1.0, std)


def _blocks(x: np.ndarray, index: np.ndarray | None) -> Iterator[np.ndarray]:
    """x[index] a block of rows at a time (at most BLOCK_ELEMS numbers), in storage order."""
    per = max(1, BLOCK_ELEMS // max(1, math.prod(x.shape[1:])))
    if index is None:
        for lo in range(0, len(x), per):
            yield np.asarray(x[lo : lo + per])
    else:
        idx = np.sort(index)  # a memory map is read forwards
        for lo in range(0, len(idx), per):
            yield x[idx[lo : lo + per]]


def _blockwise_stats(
    x: np.ndarray, index: np.ndarray | None, axes: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The statistics of a large split without a float64 copy of it (8× its size for uint8):
    integers summed exactly (Σx, Σx² in int64 per block, Python ints across blocks), floats in
    two float64 passes (mean, then Σ(x − mean)²)."""
    rows = len(x) if index is None else len(index)
    count = rows * math.prod(x.shape[2:]) if x.ndim > 2 else rows  # numbers per channel
    if np.issubdtype(x.dtype, np.integer):
        s: list[int] = [0] * x.shape[1]
        q: list[int] = [0] * x.shape[1]
        for b in _blocks(x, index):
            b64 = b.astype(np.int64)
            bs, bq = b64.sum(axis=axes).ravel(), (b64 * b64).sum(axis=axes).ravel()
            s = [a + int(v) for a, v in zip(s, bs, strict=True)]
            q = [a + int(v) for a, v in zip(q, bq, strict=True)]
        mean = np.array([float(Fraction(v, count)) for v in s])
        var = np.array(
            [
                float(Fraction(count * vq - vs * vs, count * count))
                for vs, vq in zip(s, q, strict=True)
            ]
        )
        shape = [1] * x.ndim
        shape[1] = x.shape[1]
        return mean.reshape(shape), np.sqrt(var).reshape(shape)
    total = sum(b.sum(axis=axes, keepdims=True, dtype=np.float64) for b in _blocks(x, index))
    mean = np.asarray(total) / count
    sq = sum(
        np.square(b.astype(np.float64) - mean).sum(axis=axes, keepdims=True)
        for b in _blocks(x, index)
    )
    return mean, np.sqrt(np.asarray(sq) / count)


def standardize(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x − mean)/std with stats from x_train: per channel (axis 1) for rank > 2, else per feature."""
    mean, std = fit_stats(x_train)
    return (
        ((x_train - mean) / std).astype(np.float32),
        ((x_val - mean) / std).astype(np.float32),
    )
