"""Every upload format over HTTP, checked against the generated data (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from support import assert_error

from tests.datasets.files import class_tree, images, npz, parquet, tar_of, upload, zip_of
from tricks.uploads import open_stored


def stored_arrays(api, ds_id: str) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in open_stored(api.artifact_dir / "datasets", ds_id).items()}


def created(r) -> dict:
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_uint8_image_npz_is_stored_as_uint8(ds_api, client, compressed):
    x, y = images(n=30, k=3)
    ds = created(upload(client, "imgs.npz", npz(compressed, x=x, y=y)))
    assert ds["kind"] == "image" and ds["input_shape"] == [3, 8, 8] and ds["dtype"] == "uint8"
    assert ds["class_counts"] == [10, 10, 10] and ds["num_classes"] == 3
    a = stored_arrays(ds_api, ds["id"])
    assert a["x"].dtype == np.uint8 and a["y"].dtype == np.uint8
    np.testing.assert_array_equal(a["x"], x)
    np.testing.assert_array_equal(a["y"], y)
    # stored = the native array bytes plus two 128-byte .npy headers
    assert ds["stored_bytes"] == x.nbytes + len(y) + 2 * 128


def test_npz_with_its_own_validation_split_and_float64(ds_api, client):
    rng = np.random.default_rng(3)
    x, xv = rng.normal(size=(40, 5)), rng.normal(size=(12, 5))
    y, yv = np.arange(40) % 4, np.arange(12) % 4
    ds = created(upload(client, "f64.npz", npz(x=x, y=y, x_val=xv, y_val=yv)))
    assert ds["own_val"] is True and (ds["n_train"], ds["n_val"]) == (40, 12)
    assert ds["class_counts"] == [13, 13, 13, 13] and ds["dtype"] == "float32"
    a = stored_arrays(ds_api, ds["id"])
    assert set(a) == {"x", "y", "x_val", "y_val"} and a["x_val"].dtype == np.float32
    np.testing.assert_array_equal(a["x"], x.astype(np.float32))
    np.testing.assert_array_equal(a["y_val"], yv)


def test_many_classes_get_int16_labels(ds_api, client):
    x = np.zeros((600, 2), dtype=np.int16)
    y = np.arange(600) % 300
    ds = created(upload(client, "k300.npz", npz(x=x, y=y)))
    a = stored_arrays(ds_api, ds["id"])
    assert a["x"].dtype == np.int16 and a["y"].dtype == np.int16 and ds["num_classes"] == 300


def test_csv_is_streamed_to_float32(ds_api, client):
    rows = [(i * 0.5, -i, i % 3) for i in range(50)]
    text = "a,b,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    ds = created(upload(client, "t.csv", text.encode()))
    assert ds["input_shape"] == [2] and ds["class_counts"] == [17, 17, 16]
    assert (ds["n_train"], ds["n_val"]) == (40, 10) and ds["own_val"] is False
    a = stored_arrays(ds_api, ds["id"])
    np.testing.assert_array_equal(a["x"], np.array([(r[0], r[1]) for r in rows], np.float32))
    np.testing.assert_array_equal(a["y"], [r[2] for r in rows])


def test_parquet_label_column_and_numeric_features(ds_api, client):
    n = 45
    cols = {"f1": np.arange(n, dtype=np.float64) / 4, "target": np.arange(n) % 3,
            "f2": np.arange(n, dtype=np.int32), "flag": np.arange(n) % 2 == 0}  # fmt: skip
    ds = created(upload(client, "t.parquet", parquet(cols)))
    assert ds["input_shape"] == [3] and ds["class_counts"] == [15, 15, 15]
    a = stored_arrays(ds_api, ds["id"])
    want = np.stack([cols["f1"], cols["f2"], cols["flag"]], axis=1).astype(np.float32)
    np.testing.assert_array_equal(a["x"], want)
    np.testing.assert_array_equal(a["y"], cols["target"])


def test_parquet_with_a_text_column_is_refused_by_name(ds_api, client):
    before = ds_api.stored()
    cols = {"f1": np.arange(20.0), "city": ["x"] * 20, "label": np.arange(20) % 2}
    err = assert_error(upload(client, "t.parquet", parquet(cols)), 422)
    assert err["details"][0]["loc"] == ["file", "city"] and "city" in err["message"]
    assert ds_api.stored() == before


def _tree(k: int = 2, per: int = 6, hw=(10, 12), seed: int = 1):
    rng = np.random.default_rng(seed)
    names = ["zebra", "ant", "moth"][:k]
    return {c: [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(per)] for c in names}


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_image_archive_one_folder_per_class(ds_api, client, kind):
    tree = _tree(k=3, per=5)
    members = class_tree(tree)
    data = zip_of(members) if kind == "zip" else tar_of(members, "w" if kind == "tar" else "w:gz")
    ds = created(upload(client, f"pics.{kind}", data))
    assert ds["classes"] == ["ant", "moth", "zebra"]  # sorted names -> label ids
    assert ds["input_shape"] == [3, 10, 12] and ds["dtype"] == "uint8"
    assert ds["class_counts"] == [5, 5, 5] and ds["kind"] == "image"
    a = stored_arrays(ds_api, ds["id"])
    assert a["x"].shape == (15, 3, 10, 12) and a["y"].dtype == np.uint8
    # every stored image is the generated one of its class (PNG is lossless)
    for img, label in zip(a["x"], a["y"], strict=True):
        cls = ds["classes"][label]
        assert any(np.array_equal(img, t.transpose(2, 0, 1)) for t in tree[cls])


def test_archive_resized_to_image_size_and_grayscale_as_one_channel(ds_api, client):
    # uniform images: a resize of a uniform image is that same colour (an exact oracle)
    members = {}
    for c, value in (("dark", 40), ("light", 200)):
        for i, hw in enumerate([(10, 10), (20, 14), (7, 30), (12, 12), (9, 9)]):
            members[f"top/{c}/{i}.png"] = png_l(np.full(hw, value, np.uint8))
    ds = created(upload(client, "gray.zip", zip_of(members), image_size="16x8"))
    assert ds["input_shape"] == [1, 16, 8] and ds["classes"] == ["dark", "light"]
    a = stored_arrays(ds_api, ds["id"])
    for img, label in zip(a["x"], a["y"], strict=True):
        assert (img == (40, 200)[label]).all()


def png_l(arr):
    from tests.datasets.files import png

    return png(arr)


def test_jpeg_archive_decodes_close_to_the_source(ds_api, client):
    members = {}
    for c, rgb in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        for i in range(6):
            members[f"{c}/{i}.jpg"] = _jpeg(np.full((16, 16, 3), rgb, np.uint8))
    ds = created(upload(client, "j.tar", tar_of(members)))
    a = stored_arrays(ds_api, ds["id"])
    want = {0: (20, 20, 220), 1: (220, 20, 20)}  # blue < red
    for img, label in zip(a["x"], a["y"], strict=True):
        assert np.abs(img.mean(axis=(1, 2)) - want[label]).max() < 4


def _jpeg(arr):
    from tests.datasets.files import png

    return png(arr, "JPEG")


def test_mixed_sizes_without_image_size_is_422_naming_the_file(ds_api, client):
    before = ds_api.stored()
    members = class_tree(_tree(k=2, per=5))
    members["ant/odd.png"] = png_l(np.zeros((5, 5), np.uint8))
    err = assert_error(upload(client, "m.zip", zip_of(members)), 422)
    assert "ant/odd.png" in err["message"] and "image_size" in err["message"]
    assert ds_api.stored() == before
    bad = assert_error(upload(client, "m.zip", zip_of(members), image_size="big"), 422)
    assert bad["details"][0]["loc"] == ["image_size"]
