"""The stored layout (tricks.uploads.open_stored / stored_bytes): what workers read."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from tricks.uploads import open_stored, stored_bytes


def test_directory_layout_is_memory_mapped_in_its_native_dtype(tmp_path):
    from tricks.ingest.stored import StagedDataset

    x = np.arange(5 * 3 * 4 * 4, dtype=np.uint8).reshape(5, 3, 4, 4)
    y = np.array([0, 1, 2, 1, 0], dtype=np.uint8)
    with StagedDataset(tmp_path, "d1") as st:
        w = st.array("x", np.uint8, x.shape)
        w.write(x[:2])
        w.write(x[2:])
        st.array("y", np.uint8, y.shape).write(y)
        st.commit()
    assert sorted(os.listdir(tmp_path)) == ["d1"]  # no staging dir left
    arrays = open_stored(tmp_path, "d1")
    assert set(arrays) == {"x", "y"}
    assert isinstance(arrays["x"], np.memmap) and arrays["x"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["y"], y)
    # np.save writes the same bytes: the files are plain .npy of that size
    np.save(tmp_path / "ref_x.npy", x)
    np.save(tmp_path / "ref_y.npy", y)
    ref = (tmp_path / "ref_x.npy").stat().st_size + (tmp_path / "ref_y.npy").stat().st_size
    assert stored_bytes(tmp_path, "d1") == ref
    full = open_stored(tmp_path, "d1", mmap=False)
    assert not isinstance(full["x"], np.memmap)


def test_a_staged_dataset_left_without_commit_leaves_nothing(tmp_path):
    from tricks.ingest.stored import StagedDataset

    with pytest.raises(RuntimeError), StagedDataset(tmp_path, "d2") as st:
        st.array("x", np.float32, (4, 2)).write(np.zeros((2, 2)))
        raise RuntimeError("parse failed")
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        open_stored(tmp_path, "d2")


def test_legacy_npz_is_read_fully(tmp_path):
    x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    y = np.arange(12, dtype=np.int64) % 2
    np.savez(tmp_path / "d3.npz", x=x, y=y, x_val=x[:4], y_val=y[:4])
    arrays = open_stored(tmp_path, "d3")
    assert set(arrays) == {"x", "y", "x_val", "y_val"}
    np.testing.assert_array_equal(arrays["x"], x)
    assert arrays["y"].dtype == np.int64
    assert stored_bytes(tmp_path, "d3") == (tmp_path / "d3.npz").stat().st_size


def test_missing_dataset_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_stored(tmp_path, "nope")
    with pytest.raises(FileNotFoundError):
        stored_bytes(tmp_path, "nope")


def test_stale_staging_is_swept_and_live_staging_is_kept(tmp_path):
    from tricks.ingest.stored import StagedDataset, sweep_staging

    (tmp_path / "d9").mkdir()  # a stored dataset: never touched
    stale = StagedDataset(tmp_path, "d5")
    (tmp_path / ".upload-abc.part").write_bytes(b"x")
    old = time.time() - 7 * 3600
    os.utime(stale.tmp, (old, old))
    os.utime(tmp_path / ".upload-abc.part", (old, old))
    live = StagedDataset(tmp_path, "d6")
    assert sweep_staging(tmp_path) == sorted([stale.tmp.name, ".upload-abc.part"])
    assert sorted(os.listdir(tmp_path)) == sorted(["d9", live.tmp.name])
