"""Upload parsing (tricks.ingest, what POST /datasets runs): good files pass, every hostile
file is an UploadError naming the problem, and nothing is left in the datasets directory."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tricks.ingest.common import IngestLimits
from tricks.ingest.pipeline import ingest_file
from tricks.uploads import UploadError, open_stored


def read_upload(data: bytes, filename: str, *, dataset_id: str, **limits):
    """The bytes of an upload through the ingest pipeline: (stored arrays, DatasetMeta)."""
    with tempfile.TemporaryDirectory() as d:
        src, store = Path(d) / "upload.part", Path(d) / "datasets"
        src.write_bytes(data)
        store.mkdir()
        try:
            meta = ingest_file(
                src,
                filename,
                datasets_dir=store,
                dataset_id=dataset_id,
                limits=IngestLimits(**limits),
            )
        finally:
            left = sorted(p.name for p in store.iterdir())
        assert left == ([dataset_id] if "meta" in locals() else []), left  # nothing half-written
        arrays = {k: np.array(v) for k, v in open_stored(store, dataset_id, mmap=False).items()}
    return arrays, meta


def npz(compressed: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def good(n: int = 30, shape: tuple = (4,)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, *shape)), "y": np.arange(n) % 3}


def refused(data: bytes, filename: str = "d.npz", **kw) -> UploadError:
    with pytest.raises(UploadError) as info:
        read_upload(data, filename, dataset_id="ds1", **kw)
    return info.value


@pytest.mark.parametrize(
    "shape,kind", [((4,), "tabular"), ((2, 16), "sequence"), ((1, 8, 8), "image")]
)
def test_good_npz(shape: tuple, kind: str) -> None:
    arrays, meta = read_upload(npz(**good(shape=shape)), "mine.npz", dataset_id="ds1")
    assert (
        arrays["x"].dtype == np.float32 and arrays["y"].dtype == np.uint8
    )  # 3 classes: the smallest type
    assert arrays["x"].shape == (30, *shape)
    assert meta.id == "ds1" and meta.kind == kind and meta.input_shape == list(shape)
    assert (meta.num_classes, meta.n_train, meta.n_val, meta.builtin) == (
        3,
        24,
        6,
        False,
    )  # the default split: 20% of 30 held out


def test_good_npz_with_val_split_compressed() -> None:
    g = good()
    data = npz(compressed=True, **g, x_val=g["x"][:12], y_val=g["y"][:12].astype(np.float64))
    arrays, meta = read_upload(data, "v.NPZ", dataset_id="ds1")
    assert (meta.n_train, meta.n_val) == (30, 12)
    assert arrays["y_val"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["y_val"], g["y"][:12])


def test_good_csv() -> None:
    lines = ["a,b,Label,c"] + [f"{i},{i * 0.5},{i % 2},{-i}" for i in range(12)]
    arrays, meta = read_upload(("\n".join(lines) + "\n").encode(), "t.csv", dataset_id="c1")
    assert meta.kind == "tabular" and meta.input_shape == [3] and meta.num_classes == 2
    np.testing.assert_array_equal(arrays["x"][3], np.float32([3, 1.5, -3]))
    np.testing.assert_array_equal(arrays["y"][:4], [0, 1, 0, 1])


def test_csv_with_text_in_a_feature_column_names_column_and_line() -> None:
    lines = ["a,b,target"] + [f"{i},{i},{i % 2}" for i in range(12)]
    lines[5] = "4,oops,0"
    err = refused("\n".join(lines).encode(), "t.csv")
    assert err.field == "b" and "'b'" in str(err) and "line 6" in str(err) and "oops" in str(err)


def test_csv_without_label_column() -> None:
    err = refused(b"a,b\n1,2\n", "t.csv")
    assert err.field == "label" and "label" in str(err)


def test_pickled_object_array_is_refused_and_never_unpickled() -> None:
    class Boom:
        def __reduce__(self):  # unpickling would call exec(...) and fail the test
            return (exec, ("raise AssertionError('unpickled!')",))

    x = np.empty(30, dtype=object)
    x[:] = [Boom() for _ in range(30)]
    data = npz(x=x, y=np.arange(30) % 2)  # np.savez pickles object arrays
    err = refused(data)
    assert err.field == "x" and "object" in str(err) and "pickle" in str(err)


def test_string_dtype_is_refused() -> None:
    err = refused(npz(x=np.array(["a"] * 30), y=np.arange(30) % 2))
    assert err.field == "x" and "numeric" in str(err)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(bad: float) -> None:
    g = good()
    g["x"][7, 2] = bad
    err = refused(npz(**g))
    assert err.field == "x" and "NaN or infinite" in str(err) and "(7, 2)" in str(err)


def test_mismatched_lengths() -> None:
    g = good()
    err = refused(npz(x=g["x"], y=g["y"][:-1]))
    assert err.field == "y" and "30" in str(err) and "29" in str(err)


def test_val_shape_must_match() -> None:
    g = good()
    err = refused(npz(**g, x_val=np.zeros((5, 3)), y_val=np.zeros(5)))
    assert err.field == "x_val" and "[3]" in str(err) and "[4]" in str(err)


def test_val_needs_both_arrays() -> None:
    g = good()
    assert refused(npz(**g, x_val=g["x"][:5])).field == "y_val"


@pytest.mark.parametrize(
    "labels,needle",
    [
        (np.arange(30) % 3 - 1, "0..999"),  # negative
        (np.arange(30) % 3 + 1000, "0..999"),  # above max_classes
        (np.arange(30) % 3 + 0.5, "non-integer"),
        (np.zeros(30), "single class"),
        (np.arange(30) % 2 * 2, "class 1 has no"),  # labels {0, 2}
        (np.zeros((30, 1)), "1-D"),
    ],
)
def test_bad_labels(labels: np.ndarray, needle: str) -> None:
    err = refused(npz(x=good()["x"], y=labels))
    assert err.field == "y" and needle in str(err)


def test_max_classes_is_respected() -> None:
    err = refused(npz(x=good()["x"], y=np.arange(30) % 3), max_classes=2)
    assert err.field == "y" and "0..1" in str(err)


def test_too_few_samples() -> None:
    assert "at least 10" in str(refused(npz(**good(n=6))))


def test_wrong_rank() -> None:
    err = refused(npz(x=np.zeros((30, 1, 2, 2, 2)), y=np.arange(30) % 2))
    assert err.field == "x" and "(N,C,H,W)" in str(err)


def test_zip_bomb_is_refused_before_inflating() -> None:
    # 64 MiB of zeros compresses to ~64 KiB; the declared size gives it away.
    data = npz(compressed=True, x=np.zeros((2**20, 8)), y=np.arange(2**20) % 2)
    assert len(data) < 2**20
    err = refused(data, max_inflated_bytes=2**20)
    assert "limit" in str(err) and str(2**20) in str(err)


def test_unexpected_member() -> None:
    err = refused(npz(**good(), extra=np.zeros(3)))
    assert err.field == "extra.npy" and "unexpected member" in str(err)


def test_path_like_member_name() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../x.npy", b"hello")
    assert "unexpected member" in str(refused(buf.getvalue()))


@pytest.mark.parametrize("cut", [10, 200, -40])
def test_truncated_bytes(cut: int) -> None:
    data = npz(**good())
    err = refused(data[:cut])
    assert "npz" in str(err) or "truncated" in str(err) or "corrupt" in str(err)


def test_corrupt_member_data() -> None:
    data = bytearray(npz(compressed=True, **good(n=300)))
    mid = len(data) // 3
    data[mid : mid + 64] = bytes(64)
    err = refused(bytes(data))
    assert "corrupt" in str(err) or "truncated" in str(err) or "readable" in str(err)


def test_unknown_extension() -> None:
    err = refused(b"whatever", "d.pkl")
    assert err.field == "file" and ".npz" in str(err)


def test_not_a_zip() -> None:
    assert "not a readable .npz" in str(refused(b"PK\x03\x04garbage"))
