"""Built-in datasets as metadata only (no torch): what the API validates specs against.

The arrays themselves are made by `tricks.data`; `tests/tricks/test_data.py` checks
that the shapes and sizes here match what it builds.
"""

from __future__ import annotations

from tricks.spec import DatasetMeta, split_sizes

# name -> (kind, input_shape, num_classes, n_samples, description)
BUILTINS: dict[str, tuple[str, list[int], int, int, str]] = {
    "digits": (
        "image",
        [1, 8, 8],
        10,
        1797,
        "scikit-learn's 8×8 handwritten digits, as 1×8×8 images",
    ),
    "moons": (
        "tabular",
        [2],
        2,
        1000,
        "two interleaving half circles with noise (scikit-learn make_moons)",
    ),
    "spirals": ("tabular", [2], 3, 1500, "three interleaved spiral arms with noise"),
    "blobs": (
        "tabular",
        [8],
        4,
        1000,
        "four Gaussian clusters in 8 dimensions (scikit-learn make_blobs)",
    ),
    "waves": (
        "sequence",
        [1, 64],
        3,
        1200,
        "1-D signals: noisy sine, square and sawtooth waves of random phase",
    ),
}


def builtin_meta(name: str, val_fraction: float = 0.2) -> DatasetMeta | None:
    """DatasetMeta for a built-in, split by val_fraction; None when the name is not built in."""
    if name not in BUILTINS:
        return None
    kind, shape, k, n, desc = BUILTINS[name]
    n_train, n_val = split_sizes(n, val_fraction)
    return DatasetMeta(
        id=name,
        name=desc,
        kind=kind,
        input_shape=shape,
        num_classes=k,  # type: ignore[arg-type]
        n_train=n_train,
        n_val=n_val,
        builtin=True,
    )
