"""DELETE /jobs/{id}, /sweeps/{id} and /datasets/{id} against a real API process and Redis.

No worker here: jobs stay queued unless the test drives them through the Store, the way a
worker would (claim -> heartbeat -> finish). What "gone" means is checked on Redis itself:
no key named after the job, no index, set or hash that still holds its id.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from support import assert_error, launch_api, minimal_spec, plain_spec, submit, wait_for
from support.bare import BareApi

from tricklab.server.connection import connect

pytestmark = pytest.mark.service

DB = (
    9  # 0 service, 1 api, 5/6 security, 7 dashboard auth, 11 submit path, 12 vocab, 13 disk, 14 cli
)
WAIT_S = 2.0  # TRICKLAB_DELETE_WAIT_S of this API


Bare = BareApi


@pytest.fixture(scope="module")
def bare(redis_server, tmp_path_factory) -> Iterator[Bare]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        DB,
        "delete-api",
        TRICKLAB_DELETE_WAIT_S=str(WAIT_S),
        TRICKLAB_RETENTION_INTERVAL_S="0",  # rounds run by hand here
        TRICKLAB_MAX_ACTIVE_JOBS="1000",
    )
    yield Bare(p)
    p.proc.stop()


def traces(r, job_id: str) -> list[str]:
    """Every key named after the job, and every set, sorted set or hash that holds its id
    (the recently-deleted list aside, which exists to remember it)."""
    found = [f"key {k}" for k in r.scan_iter(match=f"*{job_id}*", count=1000)]
    for k in r.scan_iter(count=1000):
        if k == "tl:deleted":
            continue
        kind = r.type(k)
        if (
            (kind == "zset" and r.zscore(k, job_id) is not None)
            or (kind == "set" and r.sismember(k, job_id))
            or (kind == "hash" and r.hexists(k, job_id))
        ):
            found.append(f"{kind} {k}")
    return found


def plant_files(bare: Bare, job_id: str) -> None:
    """What a worker leaves on disk: rolling and per-epoch checkpoints and the model."""
    d = bare.artifact_dir / "jobs" / job_id
    (d / "checkpoints" / "epochs").mkdir(parents=True)
    (d / "checkpoints" / "ckpt-000000022.pt").write_bytes(b"x" * 100)
    (d / "checkpoints" / "epochs" / "epoch-00001.pt").write_bytes(b"x" * 100)
    (d / "model.safetensors").write_bytes(b"x" * 100)


def write_data(bare: Bare, job_id: str, attempt: int) -> None:
    """Series points, a log line and a heartbeat, as a worker writes them."""
    from tricklab.server.series import SeriesWriter

    rb = connect(bare.redis_url, decode=False)
    w = SeriesWriter(rb, bare.store.series_prefix(job_id))
    w.load()
    with rb.pipeline(transaction=True) as pipe:
        w.add(pipe, "train_loss", [0, 1], [2.3, 2.1])
        w.add(pipe, "lr", [0, 1], [0.1, 0.1])
        pipe.execute()
    bare.r.xadd(bare.store.keys.job_log(job_id), {"msg": "epoch 0"})
    bare.store.heartbeat(job_id, attempt, lease_s=60, progress={"step": 1})


def test_delete_queued_job_leaves_nothing_and_a_second_delete_is_404(bare):
    with bare.client() as c:
        job = submit(c, minimal_spec())
        jid = job["id"]
        plant_files(bare, jid)
        assert traces(bare.r, jid)  # the record, its events and its indexes exist
        r = c.delete(f"/jobs/{jid}")
        assert r.status_code == 204, r.text
        assert r.content == b""
        assert traces(bare.r, jid) == []
        assert not (bare.artifact_dir / "jobs" / jid).exists()
        assert_error(c.get(f"/jobs/{jid}"), 404, "not_found")
        assert_error(c.get(f"/jobs/{jid}/curves"), 404)
        assert jid not in [j["id"] for j in c.get("/jobs").json()["data"]]
        assert_error(c.delete(f"/jobs/{jid}"), 404, "not_found")  # idempotent: gone is gone


def test_delete_finished_job_with_series_logs_and_files(bare):
    with bare.client() as c:
        jid = submit(c, minimal_spec())["id"]
        attempt = bare.claim(jid)
        write_data(bare, jid, attempt)
        assert bare.store.finish(jid, attempt, "succeeded", result={"ok": True})
        plant_files(bare, jid)
        keys = [k for k in bare.r.scan_iter(match=f"*{jid}*")]
        assert any(k.endswith(":log") for k in keys) and any(":s:" in k for k in keys), keys
        assert c.delete(f"/jobs/{jid}").status_code == 204
        assert traces(bare.r, jid) == []
        assert not (bare.artifact_dir / "jobs" / jid).exists()


def test_delete_running_job_cancels_it_and_deletes_once_the_worker_stops(bare):
    with bare.client() as c:
        jid = submit(c, minimal_spec())["id"]
        attempt = bare.claim(jid)
        write_data(bare, jid, attempt)
        answer: dict = {}

        def delete() -> None:
            with bare.client() as c2:
                answer["r"] = c2.delete(f"/jobs/{jid}")

        t = threading.Thread(target=delete)
        t.start()
        # the worker's side: the next heartbeat carries the cancel request back
        wait_for(lambda: bare.r.hget(f"tl:job:{jid}", "cancel_requested") == "1", 10, what="cancel")
        assert bare.r.hget(f"tl:job:{jid}", "status") == "running"  # not deleted under the worker
        assert bare.store.finish(jid, attempt, "cancelled")
        t.join(30)
        assert answer["r"].status_code == 204, answer["r"].text
        assert traces(bare.r, jid) == []


def test_delete_running_job_past_the_wait_is_202_and_the_round_finishes_it(bare):
    from tricklab.server import retention
    from tricklab.settings import Settings

    settings = Settings(REDIS_URL=bare.redis_url, ARTIFACT_DIR=str(bare.artifact_dir))
    with bare.client() as c:
        jid = submit(c, minimal_spec())["id"]
        attempt = bare.claim(jid)
        plant_files(bare, jid)
        t0 = time.monotonic()
        r = c.delete(f"/jobs/{jid}")
        assert r.status_code == 202, r.text
        assert time.monotonic() - t0 >= WAIT_S * 0.9
        assert r.json() == {"id": jid, "status": "running", "cancel_requested": True}
        job = c.get(f"/jobs/{jid}").json()
        assert job["status"] == "running" and job["cancel_requested"]
        assert retention.run_round(bare.store, settings).deleted_requested == []  # still running
        assert bare.store.finish(jid, attempt, "cancelled")  # the worker saw the cancel
        rep = retention.run_round(bare.store, settings)
        assert rep.deleted_requested == [jid]
        assert traces(bare.r, jid) == []
        assert not (bare.artifact_dir / "jobs" / jid).exists()
        assert_error(c.delete(f"/jobs/{jid}"), 404)


def test_a_late_worker_write_after_delete_is_removed_by_the_round(bare):
    from tricklab.server import retention
    from tricklab.settings import Settings

    settings = Settings(REDIS_URL=bare.redis_url, ARTIFACT_DIR=str(bare.artifact_dir))
    with bare.client() as c:
        jid = submit(c, minimal_spec())["id"]
        attempt = bare.claim(jid)
        assert bare.store.finish(jid, attempt, "failed", error={"type": "x", "message": "y"})
        assert c.delete(f"/jobs/{jid}").status_code == 204
    bare.r.xadd(bare.store.keys.job_log(jid), {"msg": "flushed after the end"})  # late
    bare.store.set_fields(jid, result={"late": True})  # an unfenced write re-creates a hash
    assert traces(bare.r, jid)
    rep = retention.run_round(bare.store, settings)
    assert jid in rep.leftovers
    assert traces(bare.r, jid) == []


def test_another_tenants_job_is_not_deleted(bare):
    with bare.client() as c:
        jid = submit(c, minimal_spec())["id"]
        assert c.post(f"/jobs/{jid}/cancel").status_code == 202
    assert bare.store.delete_job(jid, tenant="mallory") == "missing"
    assert bare.r.hget(f"tl:job:{jid}", "status") == "cancelled"  # untouched
    assert bare.store.delete_job(jid, tenant="default") == "deleted"


def test_store_refuses_to_delete_an_active_job(bare):
    with bare.client() as c:
        jid = submit(c, minimal_spec())["id"]
    assert bare.store.delete_job(jid) == "queued"
    assert bare.r.exists(f"tl:job:{jid}")
    bare.store.cancel(jid)
    assert bare.store.delete_job(jid) == "deleted"


# ---------------------------------------------------------------------- sweeps


def test_sweep_child_is_409_and_delete_sweep_removes_it_and_every_child(bare):
    body = {"name": "del", "base": plain_spec(), "grid": {"optimizer.lr": [0.05, 0.1]}, "seeds": 2}
    body["max_concurrent"] = 2
    with bare.client() as c:
        r = c.post("/sweeps", json=body)
        assert r.status_code == 201, r.text
        sweep = r.json()
        sid = sweep["id"]
        children = [j["job_id"] for v in sweep["variants"] for j in v["jobs"]]
        assert len(children) == 4
        created = [j for j in children if c.get(f"/jobs/{j}").status_code == 200]
        assert created  # some queued, the rest pending (max_concurrent)
        err = assert_error(c.delete(f"/jobs/{created[0]}"), 409, "part_of_sweep")
        assert err["details"] == {"sweep_id": sid} and f"DELETE /sweeps/{sid}" in err["message"]
        attempt = bare.claim(created[0])  # one child running: the delete cancels it and waits

        def worker() -> None:
            wait_for(lambda: bare.r.hget(f"tl:job:{created[0]}", "cancel_requested") == "1", 20)
            bare.store.finish(created[0], attempt, "cancelled")

        t = threading.Thread(target=worker)
        t.start()
        r = c.delete(f"/sweeps/{sid}")
        t.join(30)
        assert r.status_code == 204, r.text
        for j in children:
            assert traces(bare.r, j) == [], j
        assert traces(bare.r, sid) == []
        assert_error(c.get(f"/sweeps/{sid}"), 404)
        assert_error(c.delete(f"/sweeps/{sid}"), 404)
        assert sid not in [s["id"] for s in c.get("/sweeps").json()["data"]]


# -------------------------------------------------------------------- datasets


def npz_bytes() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.normal(size=(40, 4)).astype(np.float32), y=np.arange(40) % 2)
    return buf.getvalue()


def test_dataset_in_use_by_a_queued_or_running_job_is_409_naming_them(bare):
    with bare.client() as c:
        r = c.post("/datasets", files={"file": ("d.npz", npz_bytes())})
        assert r.status_code == 201, r.text
        ds = r.json()["id"]
        spec = {**minimal_spec(batch_size=8), "data": {"dataset": ds}}
        queued = submit(c, spec)["id"]
        running = submit(c, spec)["id"]
        attempt = bare.claim(running)
        other = submit(c, minimal_spec())["id"]  # digits: not a user of the upload
        err = assert_error(c.delete(f"/datasets/{ds}"), 409, "dataset_in_use")
        assert err["details"] == {"dataset": ds, "job_ids": sorted([queued, running])}
        assert queued in err["message"] and running in err["message"]
        assert other not in err["message"]
        assert c.get(f"/datasets/{ds}").status_code == 200  # nothing was deleted
        c.post(f"/jobs/{queued}/cancel")
        err = assert_error(c.delete(f"/datasets/{ds}"), 409, "dataset_in_use")
        assert err["details"]["job_ids"] == [running]
        bare.store.finish(running, attempt, "succeeded")
        assert c.delete(f"/datasets/{ds}").status_code == 204
        assert_error(c.get(f"/datasets/{ds}"), 404)
        c.post(f"/jobs/{other}/cancel")


# ---------------------------------------------------------------------- client


def test_client_delete_job_and_cli_rm(bare):
    import os
    import subprocess
    import sys

    from support import ROOT

    from tricklab.client.http import Client

    with bare.client() as c:
        a = submit(c, minimal_spec())["id"]
        b = submit(c, minimal_spec())["id"]
    with Client(bare.url) as client:
        assert client.delete_job(a) is True
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": bare.url}
    env.pop("TRICKLAB_API_KEY", None)
    res = subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", "rm", b],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"{b}: deleted" in res.stdout
    assert traces(bare.r, a) == [] and traces(bare.r, b) == []


def test_delete_sweep_past_the_wait_is_202_and_the_round_finishes_it(bare):
    from tricklab.server import retention
    from tricklab.settings import Settings

    settings = Settings(REDIS_URL=bare.redis_url, ARTIFACT_DIR=str(bare.artifact_dir))
    body = {"base": plain_spec(), "grid": {"optimizer.lr": [0.05, 0.1]}, "max_concurrent": 2}
    with bare.client() as c:
        sweep = c.post("/sweeps", json=body).json()
        sid = sweep["id"]
        kids = [j["job_id"] for v in sweep["variants"] for j in v["jobs"]]
        wait_for(lambda: all(bare.r.exists(f"tl:job:{k}") for k in kids), 20, what="children")
        attempt = bare.claim(kids[0])  # running, and nobody stops it within the wait
        r = c.delete(f"/sweeps/{sid}")
        assert r.status_code == 202, r.text
        assert r.json() == {"id": sid, "status": "deleting", "jobs": [kids[0]]}
        # the queued child was cancelled and deleted (only the sweep's own payload names it)
        assert [t for t in traces(bare.r, kids[1]) if sid not in t] == []
        assert retention.run_round(bare.store, settings).sweeps_deleted == []  # still running
        assert bare.store.finish(kids[0], attempt, "cancelled")
        rep = retention.run_round(bare.store, settings)
        assert rep.sweeps_deleted == [sid]
        assert traces(bare.r, kids[0]) == [] and traces(bare.r, sid) == []
        assert_error(c.get(f"/sweeps/{sid}"), 404)
