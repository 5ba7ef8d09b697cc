"""GET /datasets/{id}/samples.png: a grid of a few images of a stored image dataset.

Reads only the rows it shows from the memory-mapped x.npy (bounded whatever the
dataset's size). Layout, which the dashboard and the tests rely on: n samples, evenly
spaced over the dataset (rows linspace(0, N-1, n) rounded down), in a grid of
ceil(sqrt(n)) columns, row by row, no gaps. Each cell is the image scaled by the
integer factor max(1, 64 // max(H, W)) (nearest neighbour), or shrunk to at most 128
pixels on its longer side when it is larger than that.
"""

from __future__ import annotations

import io
import math

import numpy as np

CELL_TARGET = 64
CELL_MAX = 128


def sample_rows(n_rows: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_rows - 1, min(n, n_rows)).astype(np.int64))


def cell_size(h: int, w: int) -> tuple[int, int]:
    """(height, width) of one cell for an h x w image."""
    if max(h, w) <= CELL_MAX:
        s = max(1, CELL_TARGET // max(h, w))
        return h * s, w * s
    f = CELL_MAX / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 as is; anything else min-max scaled per image (floats are often standardized)."""
    if img.dtype == np.uint8:
        return img
    a = img.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return ((a - lo) / (hi - lo) * 255).round().astype(np.uint8)


def sample_grid(x: np.ndarray, n: int) -> bytes:
    """PNG bytes of the grid for x of shape (N, C, H, W)."""
    from PIL import Image

    _, c, h, w = x.shape
    rows = sample_rows(len(x), n)
    cols = math.ceil(math.sqrt(len(rows)))
    grid_rows = math.ceil(len(rows) / cols)
    ch, cw = cell_size(h, w)
    mode = "RGB" if c == 3 else "L"
    grid = Image.new(mode, (cols * cw, grid_rows * ch))
    for i, r in enumerate(rows):
        sample = np.asarray(x[int(r)])  # one row read from the map
        pixels = _to_uint8(sample.transpose(1, 2, 0) if c == 3 else sample[0])
        img = Image.fromarray(np.ascontiguousarray(pixels))
        if (cw, ch) != (w, h):
            big = ch > h
            img = img.resize(
                (cw, ch), Image.Resampling.NEAREST if big else Image.Resampling.BILINEAR
            )
        grid.paste(img, ((i % cols) * cw, (i // cols) * ch))
    out = io.BytesIO()
    grid.save(out, format="PNG")
    return out.getvalue()
