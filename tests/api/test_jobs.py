"""POST/GET /jobs, cancel and model download over real HTTP, jobs driven through the Store."""

from __future__ import annotations

import pytest
from support import assert_error, locs, minimal_spec, wait_for

EXAMPLE = minimal_spec()  # 3 epochs of 22 steps; every other section the API's default


def test_create_job_answers_201_with_location_and_writes_the_record(api, client):
    r = client.post("/jobs", json={**EXAMPLE, "name": "first"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued" and job["name"] == "first" and job["attempts"] == 0
    assert job["error"] is None and job["metrics"] == {}
    # digits: 1797 samples, 20% held out → 1438 train → 22 batches of 64
    sched = job["plan"].pop("schedule")  # the realised lengths: the default cosine, no warm-up
    assert {k: v for k, v in sched.items() if v is not None} == {
        "per": "batch",
        "steps_per_epoch": 22,
        "total_steps": 66,
        "warmup_steps": 0,
        "decay_steps": 66,
    }
    assert job["plan"] == {
        "steps_per_epoch": 22,
        "total_steps": 66,
        "epochs": 3,
        "n_train": 1438,
        "n_val": 359,
        # MLP 64-256-128-10 with batch norm (linear layers before BN have no bias)
        "parameters": 64 * 256 + 2 * 256 + 256 * 128 + 2 * 128 + 128 * 10 + 10,
    }
    assert job["progress"]["total_steps"] == 66 and job["progress"]["step"] == 0
    assert job["progress"]["fraction"] == 0
    rec = api.store.get_job(job["id"])
    assert rec["status"] == "queued" and rec["queue"] == "cpu"
    assert rec["spec"]["optimizer"]["name"] == "sgd"  # defaults filled in
    assert rec["plan"]["total_steps"] == 66
    got = client.get(f"/jobs/{job['id']}").json()
    assert got["id"] == job["id"] and got["spec"] == rec["spec"]


def test_the_celery_message_is_on_the_queue(api, client):
    job = api.create_job(client, training={"epochs": 2, "device": "cpu"})
    msgs = api.store.r.lrange("cpu", 0, -1)
    assert any(job["id"] in m for m in msgs)


def test_device_picks_the_queue(api, client):
    assert api.create_job(client, training={"device": "cuda"})["queue"] == "gpu"
    assert api.create_job(client, training={"device": "cpu"})["queue"] == "cpu"
    assert api.create_job(client)["queue"] == "cpu"  # auto, no GPU worker alive
    api.store.workers.beat("gpu-test@x", info={"queues": ["gpu"], "gpus": 1})
    try:
        # the API caches live queues for COVERAGE_CACHE_S (2 s): a new GPU worker is seen
        # within that bound, not necessarily by the very next request
        wait_for(lambda: api.create_job(client)["queue"] == "gpu", 3, 0.2, what="a gpu job")
    finally:
        api.store.workers.gone("gpu-test@x")


def test_list_is_newest_first_with_paging_and_status_filter(api, client):
    ids = [api.create_job(client, name=f"page-{i}")["id"] for i in range(5)]
    api.run_job(ids[1])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/jobs", params=params).json()
        assert page["count"] == len(page["data"]) <= 2
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True)
    assert [i for i in seen if i in ids] == ids[::-1]
    running = client.get("/jobs", params={"status": "running", "limit": 200}).json()
    assert ids[1] in [j["id"] for j in running["data"]]
    assert all(j["status"] == "running" for j in running["data"])
    queued = [j["id"] for j in client.get("/jobs?status=queued&limit=200").json()["data"]]
    assert ids[1] not in queued and ids[0] in queued


@pytest.mark.parametrize(
    "params, loc",
    [
        ({"status": "done"}, ["query", "status"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"cursor": "not-an-id"}, ["query", "cursor"]),
    ],
)
def test_bad_list_parameters_are_422(client, params, loc):
    assert locs(assert_error(client.get("/jobs", params=params), 422, "validation_error")) == [loc]


def test_unknown_job_is_404(client):
    err = assert_error(client.get("/jobs/j0000000000000000dead"), 404, "not_found")
    assert "j0000000000000000dead" in err["message"]
    assert_error(client.post("/jobs/nope/cancel"), 404, "not_found")
    assert_error(client.get("/jobs/nope/model"), 404, "not_found")
    assert_error(client.get("/jobs/nope/curves"), 404, "not_found")
    assert_error(client.get("/jobs/nope/lr"), 404, "not_found")
    assert_error(client.get("/jobs/nope/events"), 404, "not_found")


@pytest.mark.parametrize(
    "body, loc, words",
    [
        ({**EXAMPLE, "colour": "red"}, ["colour"], "extra"),
        ({**EXAMPLE, "training": {"epochs": 3, "bogus": 1}}, ["training", "bogus"], "extra"),
        ({**EXAMPLE, "optimizer": {"lr": -0.1}}, ["optimizer", "lr"], "greater than 0"),
        ({**EXAMPLE, "optimizer": {"name": "adam", "lr": 1e9}}, ["optimizer", "lr"], "less than"),
        (
            {**EXAMPLE, "schedule": {"warmup": {"epochs": 5}}, "training": {"epochs": 3}},
            ["schedule", "warmup", "epochs"],
            "longer than training",
        ),
        (
            {**EXAMPLE, "schedule": {"warmup": {"steps": 500}}, "training": {"epochs": 3}},
            ["schedule", "warmup", "steps"],
            "longer than training",
        ),
        (
            {"data": {"dataset": "moons"}, "regularization": {"augment": {"rotate": 10}}},
            ["regularization", "augment", "rotate"],
            "tabular",
        ),
        ({"data": {"dataset": "no-such-set"}}, ["data", "dataset"], "no-such-set"),
        ({"data": {"dataset": "moons"}, "model": {"arch": "cnn"}}, ["model", "arch"], "tabular"),
        (
            {"data": {"dataset": "moons"}, "training": {"batch_size": 5000}},
            ["training", "batch_size"],
            "larger than",
        ),
        ({"name": "no data"}, ["data"], "required"),
    ],
)
def test_bad_specs_are_422_naming_the_field(client, body, loc, words):
    err = assert_error(client.post("/jobs", json=body), 422, "validation_error")
    assert loc in locs(err), err
    detail = next(d for d in err["details"] if d["loc"] == loc)
    assert words.lower() in detail["msg"].lower(), detail


def test_non_json_body_is_422_not_500(client):
    r = client.post("/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 422, "validation_error")
    assert_error(client.post("/jobs", json=[1, 2]), 422, "validation_error")


def test_cancel_a_queued_job_cancels_it(api, client):
    job = api.create_job(client)
    r = client.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
    # a queued job that was cancelled can never be claimed
    assert api.store.claim(job["id"], "w", lease_s=10, max_attempts=3) == (0, "cancelled")
    err = assert_error(client.post(f"/jobs/{job['id']}/cancel"), 409, "job_finished")
    assert "cancelled" in err["message"]


def test_cancel_a_running_job_requests_it_and_finished_is_409(api, client):
    job = api.create_job(client)
    attempt = api.run_job(job["id"])
    r = client.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 202
    assert r.json() == {"id": job["id"], "status": "running", "cancel_requested": True}
    assert client.get(f"/jobs/{job['id']}").json()["cancel_requested"] is True
    assert api.store.heartbeat(job["id"], attempt, lease_s=10) == 2  # the worker sees it
    assert api.store.finish(job["id"], attempt, "cancelled")

    done = api.create_job(client)
    a = api.run_job(done["id"])
    api.store.finish(done["id"], a, "succeeded", result={"steps": 66})
    err = assert_error(client.post(f"/jobs/{done['id']}/cancel"), 409, "job_finished")
    assert "succeeded" in err["message"] and err["details"] == {"status": "succeeded"}


def test_job_reports_worker_progress_metrics_and_error(api, client):
    job = api.create_job(client)
    a = api.run_job(job["id"])
    progress = {
        "epoch": 1,
        "epochs": 3,
        "step": 30,
        "total_steps": 66,
        "fraction": 30 / 66,
        "eta_seconds": 1.5,
        "samples_per_second": 1000.0,
    }
    api.store.heartbeat(
        job["id"],
        a,
        lease_s=10,
        progress=progress,
        metrics={"lr": 0.05, "train_loss": 1.2},
        best={"val_acc": 0.8, "epoch": 0},
    )
    got = client.get(f"/jobs/{job['id']}").json()
    assert got["status"] == "running" and got["attempts"] == 1 and got["started_at"]
    assert got["progress"] == {**progress, "first_log_at": None}  # a documented field, unset
    assert got["metrics"] == {"lr": 0.05, "train_loss": 1.2}
    assert got["best"] == {"val_acc": 0.8, "epoch": 0}
    api.store.finish(job["id"], a, "failed", error={"type": "diverged", "message": "loss is NaN"})
    got = client.get(f"/jobs/{job['id']}").json()
    assert got["status"] == "failed" and got["finished_at"]
    assert got["error"] == {"type": "diverged", "message": "loss is NaN"}


def test_model_is_409_before_success_then_downloadable(api, client):
    job = api.create_job(client)
    err = assert_error(client.get(f"/jobs/{job['id']}/model"), 409, "model_not_ready")
    assert "queued" in err["message"]
    a = api.run_job(job["id"])
    path = api.artifact_dir / "jobs" / job["id"] / "model.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    api.store.finish(job["id"], a, "succeeded")
    r = client.get(f"/jobs/{job['id']}/model")
    assert r.status_code == 200 and r.content == path.read_bytes()
    assert r.headers["content-type"] == "application/octet-stream"
