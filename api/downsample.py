"""Downsample a curve to at most max_points, keeping the first, last, minimum and maximum."""

from __future__ import annotations

import numpy as np


def keep_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices to keep: first, last, and each bucket's argmin and argmax, in order."""
    n = int(values.size)
    if n <= max_points:
        return np.arange(n)
    buckets = (max_points - 2) // 2
    if buckets < 1:  # room for the ends only: never more than max_points
        return np.array([0, n - 1], dtype=np.int64)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [0, n - 1]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a:
            chunk = values[a:b]
            keep += [a + int(np.argmin(chunk)), a + int(np.argmax(chunk))]
    return np.unique(np.asarray(keep, dtype=np.int64))
