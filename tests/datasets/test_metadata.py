"""GET /datasets/{id} fields, samples.png, quotas by stored bytes, and JSON from a tus upload."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from support import ROOT, assert_error

from tests.datasets.files import images, npz, upload, zip_of


def created(r) -> dict:
    assert r.status_code == 201, r.text
    return r.json()


def decode_png(data: bytes):
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return img


def test_image_dataset_metadata_and_samples_grid(client):
    x, y = images(n=30, k=3, hw=(8, 8), seed=5)
    ds = created(upload(client, "s.npz", npz(x=x, y=y), name="samples"))
    got = client.get(f"/datasets/{ds['id']}").json()
    assert got == ds
    assert got["input_shape"] == [3, 8, 8] and got["dtype"] == "uint8"
    assert got["class_counts"] == [10, 10, 10] and (got["n_train"], got["n_val"]) == (24, 6)
    assert got["stored_bytes"] == x.nbytes + 30 + 256
    listed = {d["id"]: d for d in client.get("/datasets").json()["data"]}
    assert listed[ds["id"]] == ds

    r = client.get(f"/datasets/{ds['id']}/samples.png", params={"n": 16})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = decode_png(r.content)
    # 16 samples: 4 x 4 cells of 8x8 images scaled by 64 // 8 = 8
    assert img.size == (256, 256) and img.mode == "RGB"
    grid = np.asarray(img)
    rows = np.linspace(0, 29, 16).astype(int)
    for cell in (0, 5, 15):
        want = np.repeat(np.repeat(x[rows[cell]].transpose(1, 2, 0), 8, axis=0), 8, axis=1)
        r0, c0 = (cell // 4) * 64, (cell % 4) * 64
        np.testing.assert_array_equal(grid[r0 : r0 + 64, c0 : c0 + 64], want)
    five = decode_png(client.get(f"/datasets/{ds['id']}/samples.png?n=5").content)
    assert five.size == (3 * 64, 2 * 64)  # ceil(sqrt(5)) = 3 columns, 2 rows


def test_samples_of_grayscale_archive_and_refusals(client):
    from tests.datasets.files import png

    members = {f"{c}/{i}.png": png(np.full((40, 40), v, np.uint8)) for c, v in (("a", 10), ("b", 250)) for i in range(5)}  # fmt: skip
    ds = created(upload(client, "g.zip", zip_of(members)))
    img = decode_png(client.get(f"/datasets/{ds['id']}/samples.png?n=4").content)
    assert img.mode == "L" and img.size == (2 * 40, 2 * 40)  # 64 // 40 = 1: no scaling
    assert set(np.unique(np.asarray(img))) <= {10, 250}
    tab = created(upload(client, "t.npz", npz(x=np.ones((20, 3), np.float32), y=np.arange(20) % 2)))
    assert_error(client.get(f"/datasets/{tab['id']}/samples.png"), 409, "not_images")
    assert_error(client.get("/datasets/digits/samples.png"), 409)
    assert_error(client.get("/datasets/d0000/samples.png"), 404)
    for n in (0, 65, "x"):
        assert_error(client.get(f"/datasets/{ds['id']}/samples.png", params={"n": n}), 422)


def test_jobs_split_by_their_own_val_fraction_or_the_uploaded_split(client):
    x, y = images(n=40, k=2)
    ds = created(upload(client, "j.npz", npz(x=x, y=y)))
    assert (ds["n_train"], ds["n_val"], ds["own_val"]) == (32, 8, False)
    spec = {"data": {"dataset": ds["id"], "val_fraction": 0.25}, "training": {"batch_size": 10, "epochs": 1}, "model": {"arch": "cnn"}}  # fmt: skip
    job = client.post("/jobs", json=spec)
    assert job.status_code == 201, job.text
    assert (job.json()["plan"]["n_train"], job.json()["plan"]["n_val"]) == (30, 10)
    own = created(upload(client, "o.npz", npz(x=x, y=y, x_val=x[:6], y_val=y[:6])))
    job = client.post("/jobs", json={**spec, "data": {"dataset": own["id"], "val_fraction": 0.5}})
    assert (job.json()["plan"]["n_train"], job.json()["plan"]["n_val"]) == (40, 6)
    client.post(f"/jobs/{job.json()['id']}/cancel")


def test_storage_quota_counts_stored_bytes_before_writing(quota_api):
    from tests.datasets.conftest import QUOTA

    with quota_api.client() as c:
        # 46 KB of zeros compresses to ~1 KB: the upload is small, what it stores is not
        zeros = npz(True, x=np.zeros((60, 3, 16, 16), np.uint8), y=np.arange(60) % 2)
        assert len(zeros) < 5000
        before = quota_api.stored()
        err = assert_error(upload(c, "z.npz", zeros), 413, "quota_exceeded")
        assert err["details"]["limit"] == "max_dataset_bytes_total"
        assert err["details"]["stored_bytes"] == 60 * 768 + 60 + 256 > QUOTA
        assert quota_api.stored() == before
        # 30 images (23 KB) fit; a second such dataset would pass 40 KB
        x, y = images(n=30, hw=(16, 16))
        first = created(upload(c, "a.npz", npz(x=x, y=y)))
        assert first["stored_bytes"] == x.nbytes + 30 + 256
        err = assert_error(upload(c, "b.npz", npz(True, x=x, y=y)), 413, "quota_exceeded")
        assert err["details"]["used"] == first["stored_bytes"]
        assert quota_api.stored() == before | {first["id"]}
        assert c.delete(f"/datasets/{first['id']}").status_code == 204
        assert quota_api.stored() == before
        assert (
            created(upload(c, "b.npz", npz(True, x=x, y=y)))["stored_bytes"]
            == first["stored_bytes"]
        )


TUS = {"Tus-Resumable": "1.0.0"}


@pytest.mark.skipif(not (ROOT / "api" / "tus.py").exists(), reason="no tus server (api/tus.py)")
def test_json_body_turns_a_finished_tus_upload_into_a_dataset(ds_api, client):
    x, y = images(n=20, k=2)
    data = npz(x=x, y=y)
    meta = "filename " + base64.b64encode(b"tus.npz").decode()
    r = client.post(
        "/uploads", headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta}
    )
    assert r.status_code == 201, r.text
    loc = r.headers["Location"]
    upload_id = loc.rstrip("/").split("/")[-1]
    half = len(data) // 2
    patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
    assert (
        client.patch(loc, content=data[:half], headers={**patch, "Upload-Offset": "0"}).status_code
        == 204
    )
    # not finished yet: 409, and nothing stored
    before = ds_api.stored()
    assert_error(client.post("/datasets", json={"upload": upload_id}), 409)
    assert ds_api.stored() == before
    r = client.patch(loc, content=data[half:], headers={**patch, "Upload-Offset": str(half)})
    assert r.status_code == 204
    ds = created(client.post("/datasets", json={"upload": upload_id, "name": "from tus"}))
    assert ds["name"] == "from tus" and ds["filename"] == "tus.npz" and ds["dtype"] == "uint8"
    assert ds["input_shape"] == [3, 8, 8] and ds["class_counts"] == [10, 10]
    # released: the upload is gone, a second use is 404
    assert_error(client.post("/datasets", json={"upload": upload_id}), 404)
    assert_error(client.post("/datasets", json={"upload": "u-nope"}), 404)
    err = assert_error(client.post("/datasets", json={"name": "no id"}), 422)
    assert ["upload"] in [d["loc"] for d in err["details"]]
