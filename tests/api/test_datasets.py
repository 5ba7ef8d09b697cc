"""Dataset uploads: valid ones are stored and listed; hostile ones change nothing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from support import assert_error, locs


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def good_arrays(n: int = 60, f: int = 3, k: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, f)).astype(np.float32), "y": np.arange(n) % k}


def csv_bytes(n: int = 40) -> bytes:
    rows = ["f1,f2,label"] + [f"{i * 0.1:.2f},{-i * 0.2:.2f},{i % 2}" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def upload(client, filename: str, data: bytes, **form):
    return client.post(
        "/datasets", files={"file": (filename, data, "application/octet-stream")}, data=form
    )


def stored(api) -> set[str]:
    d = api.artifact_dir / "datasets"
    return {p.name for p in d.iterdir()} if d.exists() else set()


def listed_ids(client) -> set[str]:
    return {d["id"] for d in client.get("/datasets").json()["data"]}


def test_builtins_are_listed_and_readable(client):
    data = client.get("/datasets").json()["data"]
    by_id = {d["id"]: d for d in data}
    assert {"digits", "moons", "spirals", "blobs"} <= set(by_id)
    assert by_id["digits"]["kind"] == "image" and by_id["digits"]["builtin"] is True
    assert client.get("/datasets/moons").json()["num_classes"] == 2
    assert_error(client.get("/datasets/d0000"), 404, "not_found")
    assert_error(client.delete("/datasets/digits"), 409, "builtin_dataset")


def test_npz_upload_is_stored_listed_and_trainable(api, client):
    r = upload(client, "toy.npz", npz(**good_arrays()), name="toy set")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["id"].startswith("d") and r.headers["location"] == f"/datasets/{ds['id']}"
    assert ds["kind"] == "tabular" and ds["input_shape"] == [3] and ds["num_classes"] == 3
    # no own split: n_train/n_val show the default val_fraction's split (0.2 of 60)
    assert ds["n_train"] == 48 and ds["n_val"] == 12 and ds["own_val"] is False
    assert ds["builtin"] is False and ds["class_counts"] == [20, 20, 20]
    assert ds["name"] == "toy set" and ds["filename"] == "toy.npz" and ds["bytes"] > 0
    assert ds["created_at"] and ds["dtype"] == "float32"
    assert ds["id"] in stored(api)  # the directory layout: {id}/x.npy, {id}/y.npy
    d = api.artifact_dir / "datasets" / ds["id"]
    x, y = np.load(d / "x.npy", allow_pickle=False), np.load(d / "y.npy", allow_pickle=False)
    assert x.dtype == np.float32 and y.dtype == np.uint8 and len(y) == 60  # smallest label type
    assert ds["stored_bytes"] == (d / "x.npy").stat().st_size + (d / "y.npy").stat().st_size
    assert ds["id"] in listed_ids(client)
    assert client.get(f"/datasets/{ds['id']}").json() == ds

    job = client.post(
        "/jobs",
        json={
            "data": {"dataset": ds["id"], "val_fraction": 0.25},
            "training": {"batch_size": 16, "epochs": 2},
        },
    )
    assert job.status_code == 201, job.text
    plan = job.json()["plan"]
    assert plan.pop("schedule")["warmup_steps"] == 0  # the realised lengths: no warm-up
    assert plan == {
        "steps_per_epoch": 2,
        "total_steps": 4,
        "epochs": 2,
        "n_train": 45,
        "n_val": 15,
        "parameters": 3 * 256 + 2 * 256 + 256 * 128 + 2 * 128 + 128 * 3 + 3,  # MLP 3-256-128-3
    }
    bad = client.post("/jobs", json={"data": {"dataset": ds["id"]}, "model": {"arch": "cnn"}})
    assert ["model", "arch"] in locs(assert_error(bad, 422))

    # the queued job (this API has no worker) still uses it: 409 naming it, until cancelled
    busy = assert_error(client.delete(f"/datasets/{ds['id']}"), 409)
    assert job.json()["id"] in busy["message"]
    assert client.post(f"/jobs/{job.json()['id']}/cancel").status_code in (200, 202)
    assert client.delete(f"/datasets/{ds['id']}").status_code == 204
    assert ds["id"] not in listed_ids(client) and ds["id"] not in stored(api)
    assert_error(client.get(f"/datasets/{ds['id']}"), 404)
    assert_error(client.delete(f"/datasets/{ds['id']}"), 404)


def test_csv_upload_is_stored_and_listed(api, client):
    r = upload(client, "points.csv", csv_bytes())
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["kind"] == "tabular" and ds["input_shape"] == [2] and ds["num_classes"] == 2
    assert ds["n_train"] + ds["n_val"] == 40 and ds["id"] in listed_ids(client)
    assert ds["id"] in stored(api)


def _pickled() -> bytes:
    return npz(x=np.array([{"a": 1}] * 20, dtype=object), y=np.zeros(20, dtype=np.int64))


def _nan() -> bytes:
    a = good_arrays()
    a["x"][3, 1] = np.nan
    return npz(**a)


def _bad_labels() -> bytes:
    a = good_arrays()
    a["y"] = a["y"] - 1  # -1 is not a class
    return npz(**a)


def _fractional_labels() -> bytes:
    a = good_arrays()
    return npz(x=a["x"], y=a["y"] + 0.5)


HOSTILE = [
    ("pickle.npz", _pickled(), "x"),
    ("nan.npz", _nan(), "x"),
    ("labels.npz", _bad_labels(), "y"),
    ("fractional.npz", _fractional_labels(), "y"),
    ("text.csv", b"f1,f2,label\n1.0,2.0,0\n1.0,hello,1\n" * 10, None),
    ("empty.npz", b"", None),
    ("junk.npz", b"PK\x03\x04 not really a zip", None),
    ("data.exe", b"MZ", None),
]


@pytest.mark.parametrize("name, data, field", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_uploads_are_422_and_store_nothing(api, client, name, data, field):
    files_before, listed_before = stored(api), listed_ids(client)
    err = assert_error(upload(client, name, data), 422, "validation_error")
    assert err["details"] and err["details"][0]["loc"][0] == "file"
    if field is not None:
        assert err["details"][0]["loc"] == ["file", field], err
    assert stored(api) == files_before
    assert listed_ids(client) == listed_before


def test_oversize_upload_is_413_and_stores_nothing(api, client):
    files_before = stored(api)
    big = np.zeros((api.max_upload_bytes // 4 + 1000, 1), dtype=np.float32)
    data = npz(x=big, y=np.zeros(len(big), dtype=np.int64))
    err = assert_error(upload(client, "big.npz", data), 413, "payload_too_large")
    assert str(api.max_upload_bytes) in err["message"] or "limit" in err["message"]
    assert stored(api) == files_before


def test_upload_without_a_file_is_422(client):
    err = assert_error(client.post("/datasets", data={"name": "x"}), 422, "validation_error")
    assert ["file"] in locs(err)
