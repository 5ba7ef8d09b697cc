"""Built-in datasets match the catalog; splits are seeded; standardization uses train stats only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tricks.data as data_mod
import tricks.standardize as standardize_mod
from tricks.catalog import BUILTINS, builtin_meta
from tricks.data import Inputs, builtin_arrays, load_dataset, standardize
from tricks.spec import DataSpec


@pytest.fixture(scope="module")
def builtins() -> dict:
    return {name: load_dataset(DataSpec(dataset=name), seed=0) for name in BUILTINS}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_matches_catalog(builtins: dict, name: str) -> None:
    kind, shape, k, n, _ = BUILTINS[name]
    meta = builtin_meta(name, 0.2)
    d = builtins[name]
    assert d.kind == kind and d.name == name
    assert d.input_shape == tuple(shape)
    assert d.num_classes == k
    assert d.x_train.shape == (meta.n_train, *shape)
    assert d.x_val.shape == (meta.n_val, *shape)
    assert len(d.y_train) == meta.n_train and len(d.y_val) == meta.n_val
    assert meta.n_train + meta.n_val == n
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.y_train.min() >= 0 and d.y_train.max() == k - 1
    assert torch.isfinite(d.x_train).all() and torch.isfinite(d.x_val).all()


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_generation_is_fixed(name: str) -> None:
    x1, y1 = builtin_arrays(name)
    x2, y2 = builtin_arrays(name)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert len(np.unique(y1)) == BUILTINS[name][2]


def test_val_fraction_sizes_follow_split_sizes() -> None:
    d = load_dataset(DataSpec(dataset="moons", val_fraction=0.33), seed=1)
    meta = builtin_meta("moons", 0.33)
    assert (len(d.y_train), len(d.y_val)) == (meta.n_train, meta.n_val)


def test_split_is_deterministic_by_seed() -> None:
    spec = DataSpec(dataset="blobs", standardize=False)
    a, b, c = (load_dataset(spec, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train, c.x_train)
    # The data are the same, only the partition differs.
    all_a = torch.cat([a.x_train, a.x_val]).sort(dim=0).values
    all_c = torch.cat([c.x_train, c.x_val]).sort(dim=0).values
    assert torch.equal(all_a, all_c)


@pytest.mark.parametrize("name,axes", [("blobs", (0,)), ("digits", (0, 2, 3)), ("waves", (0, 2))])
def test_standardization_is_fitted_on_train_only(name: str, axes: tuple) -> None:
    raw = load_dataset(DataSpec(dataset=name, standardize=False), seed=0)
    d = load_dataset(DataSpec(dataset=name), seed=0)
    mean = raw.x_train.double().mean(dim=axes, keepdim=True)
    std = raw.x_train.double().std(dim=axes, keepdim=True, unbiased=False)
    assert d.x_train.double().mean(dim=axes).abs().max() < 1e-5
    assert (d.x_train.double().std(dim=axes, unbiased=False) - 1).abs().max() < 1e-4
    # Validation is transformed with the training statistics, not its own.
    expected = (raw.x_val.double() - mean) / std
    torch.testing.assert_close(d.x_val.double(), expected, atol=1e-5, rtol=1e-5)
    assert d.x_val.double().mean(dim=axes).abs().max() > 1e-4


def test_to_moves_every_tensor() -> None:
    d = load_dataset(DataSpec(dataset="moons"), seed=0).to("cpu")
    assert d.x_val.device.type == "cpu" and d.num_classes == 2


def test_uploaded_npz_with_and_without_val(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, (50, 2, 16)).astype(np.float32)
    y = np.arange(50) % 3
    np.savez(tmp_path / "seqs.npz", x=x, y=y)
    d = load_dataset(DataSpec(dataset="seqs", val_fraction=0.2), seed=0, upload_dir=tmp_path)
    assert d.kind == "sequence" and d.input_shape == (2, 16) and d.num_classes == 3
    assert (len(d.y_train), len(d.y_val)) == (40, 10)

    np.savez(tmp_path / "tab.npz", x=x[:40, 0], y=y[:40], x_val=x[40:, 0], y_val=y[40:])
    d = load_dataset(DataSpec(dataset="tab"), seed=0, upload_dir=tmp_path)
    assert d.kind == "tabular" and (len(d.y_train), len(d.y_val)) == (40, 10)
    assert abs(float(d.x_train.mean())) < 1e-5


def test_unknown_dataset_without_upload_dir() -> None:
    with pytest.raises(FileNotFoundError):
        load_dataset(DataSpec(dataset="nope"), seed=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
@pytest.mark.parametrize("shape", [(3, 5, 4), (6,)])
def test_blockwise_statistics_of_a_large_split_match_numpy(monkeypatch, dtype, shape) -> None:
    """Above EXACT_ELEMS the stats are summed a block at a time (exactly for integers):
    the same mean and std as numpy's float64 ones of the gathered split."""
    rng = np.random.default_rng(1)
    x = (rng.normal(100, 40, (500, *shape)).clip(0, 255)).astype(dtype)
    index = rng.permutation(500)[:350]
    monkeypatch.setattr(standardize_mod, "EXACT_ELEMS", 10)
    monkeypatch.setattr(standardize_mod, "BLOCK_ELEMS", 7 * int(np.prod(shape)))  # ragged end
    mean, std = standardize_mod.fit_stats(x, index)
    axes = (0,) if len(shape) == 1 else (0, 2, 3)
    xt = x[index].astype(np.float64)
    np.testing.assert_allclose(mean, xt.mean(axis=axes, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(std, xt.std(axis=axes, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("block", [None, 100])  # 100: the CPU converts 1 row at a time
def test_standardized_inputs_per_chunk_are_standardize_bit_for_bit(monkeypatch, block) -> None:
    """The per-chunk conversion (float64, rounded once) equals `standardize` up front."""
    if block is not None:
        monkeypatch.setattr(data_mod, "PRESENT_ELEMS", block)
    raw = load_dataset(DataSpec(dataset="digits", standardize=False), seed=2)
    xt, xv = raw.x_train.numpy(), raw.x_val.numpy()
    ref_t, ref_v = standardize(xt, xv)
    mean, std = standardize_mod.fit_stats(xt)
    chunk = Inputs(torch.from_numpy(xt), None, torch.from_numpy(mean), torch.from_numpy(std))
    rows = torch.tensor([5, 0, 700, 3])
    assert torch.equal(chunk.take(rows), torch.from_numpy(ref_t)[rows])
    val = Inputs(torch.from_numpy(xv), None, torch.from_numpy(mean), torch.from_numpy(std))
    assert torch.equal(val.materialize(), torch.from_numpy(ref_v))
