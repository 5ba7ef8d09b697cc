"""Sweeps, reuse, forks and the lr range test against the real service (Redis, worker, HTTP)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from support import (
    LONG_TRAINING,
    get_job,
    plain_spec,
    small_spec,
    submit,
    wait_done,
    wait_for,
    wait_status,
)

from tricks.schedules import lr_at
from tricks.spec import JobSpec

pytestmark = [pytest.mark.service, pytest.mark.slow]

BASE = plain_spec()


def _ts(iso: str | None) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else float("inf")


def wait_sweep(c, sweep_id: str, statuses=("succeeded", "failed", "cancelled"), timeout=300):
    return wait_for(
        lambda: (s := c.get(f"/sweeps/{sweep_id}").json())["status"] in statuses and s,
        timeout,
        0.3,
        what=f"sweep {sweep_id} to reach {statuses}",
    )


def test_grid_sweep_table_statistics_and_cap(service):
    stats = pytest.importorskip("scipy.stats")
    body = {
        "name": "grid test",
        "base": BASE,
        "grid": {"regularization.label_smoothing": [0.0, 0.2]},
        "seeds": 2,
        "max_concurrent": 2,
    }
    with service.client() as c:
        r = c.post("/sweeps", json=body)
        assert r.status_code == 201, r.text
        sw = r.json()
        assert r.headers["location"] == f"/sweeps/{sw['id']}"
        # the cap: two children created (a worker may already have claimed one), two pending
        created = sum(sw["counts"][k] for k in ("queued", "running", "succeeded", "failed"))
        assert sw["counts"]["pending"] == 2 and created == 2, sw["counts"]
        sw = wait_sweep(c, sw["id"])
        assert sw["status"] == "succeeded", sw
        assert sw["counts"]["succeeded"] == 4
        jobs = {
            j["job_id"]: c.get(f"/jobs/{j['job_id']}").json()
            for v in sw["variants"]
            for j in v["jobs"]
        }
        listed = {j["id"] for j in c.get("/jobs", params={"limit": 200}).json()["data"]}
        assert set(jobs) <= listed  # ordinary jobs, visible in /jobs
        assert {j["sweep_id"] for j in jobs.values()} == {sw["id"]}

        # the cap: at no creation time were more than 2 children alive (created, not finished)
        spans = [(_ts(j["created_at"]), _ts(j["finished_at"])) for j in jobs.values()]
        alive = [sum(1 for a, b in spans if a <= t < b) for t, _ in spans]
        assert max(alive) <= 2

        rows = sw["results"]
        assert [r["variant"] for r in rows] == [0, 1]
        per = []
        for row, v in zip(rows, sw["variants"], strict=True):
            children = [jobs[j["job_id"]] for j in v["jobs"]]
            assert {ch["variant"] for ch in children} == {v["name"]}
            assert sorted(ch["spec"]["training"]["seed"] for ch in children) == [0, 1]
            final = np.array([ch["result"]["metrics"]["val_acc"] for ch in children])
            best = np.array([ch["result"]["best"]["val_acc"] for ch in children])
            loss = np.array([ch["result"]["metrics"]["val_loss"] for ch in children])
            assert row["n_done"] == 2
            assert row["final_val_acc"]["mean"] == pytest.approx(final.mean())
            assert row["final_val_acc"]["std"] == pytest.approx(final.std(ddof=1))
            assert row["best_val_acc"]["mean"] == pytest.approx(best.mean())
            assert row["final_val_loss"]["mean"] == pytest.approx(loss.mean())
            per.append(final)
        d = rows[1]["diff"]
        assert rows[0]["diff"] is None and d["vs"] == 0
        assert d["delta"] == pytest.approx(per[1].mean() - per[0].mean())
        ref = stats.ttest_ind(per[1], per[0], equal_var=False)
        if np.isfinite(ref.pvalue):
            assert d["p"] == pytest.approx(ref.pvalue, rel=1e-6)
            assert d["significant"] == (ref.pvalue < 0.05)
        assert "Welch" in d["test"]

        cur = c.get(
            f"/sweeps/{sw['id']}/curves", params={"metric": "val_acc", "x": "fraction"}
        ).json()
        assert len(cur["variants"]) == 2
        for v in cur["variants"]:
            assert v["seeds"] == 2 and v["x"][-1] == pytest.approx(1.0)
            assert all(
                lo <= m <= hi for lo, m, hi in zip(v["min"], v["mean"], v["max"], strict=True)
            )
        assert any(s["id"] == sw["id"] for s in c.get("/sweeps").json()["data"])


def test_cumulative_ablation_order_and_cancel(service, cleanup):
    base = plain_spec(**LONG_TRAINING)  # runs until cancelled: the sweep is cancelled mid-run
    body = {
        "base": base,
        "ablation": [
            {"name": "+cosine", "set": {"schedule.decay.kind": "cosine"}},
            {"name": "+label smoothing", "set": {"regularization.label_smoothing": 0.1}},
            {"name": "+mixup", "set": {"regularization.mixup": {"alpha": 0.2}}},
        ],
        "seeds": 1,
        "max_concurrent": 3,
    }
    with service.client() as c:
        r = c.post("/sweeps", json=body)
        assert r.status_code == 201, r.text
        sw = cleanup.sweep(r.json())
        ids = [v["jobs"][0]["job_id"] for v in sw["variants"]]
        specs = [JobSpec.model_validate(get_job(c, i)["spec"]) for i in ids[:3]]
        assert [s.schedule.decay.kind for s in specs] == ["constant", "cosine", "cosine"]
        assert [s.regularization.label_smoothing for s in specs] == [0.0, 0.0, 0.1]
        assert all(s.regularization.mixup is None for s in specs)
        assert c.get(f"/jobs/{ids[3]}").status_code == 404  # pending: the cap is 3
        wait_status(c, ids[0], "running")
        r = c.post(f"/sweeps/{sw['id']}/cancel")
        assert r.status_code == 202, r.text
        sw = wait_sweep(c, sw["id"], ("cancelled",), 60)
        statuses = [get_job(c, i)["status"] for i in ids[:3]]
        assert statuses == ["cancelled"] * 3
        # The worker ends the running child and drops the two queued ones' messages, and
        # none of that may start the pending fourth. It takes messages in order: once a
        # job sent now has run, it has been through all of them.
        assert wait_done(c, submit(c, small_spec(epochs=1))["id"])["status"] == "succeeded"
        assert c.get(f"/jobs/{ids[3]}").status_code == 404  # never started
        assert c.get(f"/sweeps/{sw['id']}").json()["status"] == "cancelled"


def test_one_bad_variant_rejects_the_sweep(service):
    with service.client() as c:
        r = c.post("/sweeps", json={"base": BASE, "grid": {"training.batch_size": [64, 5000]}})
        assert r.status_code == 422
        err = r.json()["error"]
        assert "variant 1" in err["message"] and "training.batch_size" in err["message"]
        assert err["details"][0]["loc"] == ["variants", 1, "training", "batch_size"]
        r = c.post(
            "/sweeps",
            json={
                "base": BASE,
                "ablation": [{"name": "+bad mixup", "set": {"regularization.mixup.alpha": -1}}],
            },
        )
        assert r.status_code == 422
        assert "+bad mixup" in r.json()["error"]["message"]
        assert r.json()["error"]["details"][0]["loc"][:2] == ["variants", 1]


def test_lr_range_test_job(service):
    spec = {
        **BASE,
        "task": "lr_range_test",
        "lr_range": {"min_lr": 1e-4, "max_lr": 10.0, "steps": 80},
    }
    with service.client() as c:
        job = wait_done(c, submit(c, spec)["id"])
        assert job["status"] == "succeeded", job
        res = job["result"]
        lo, hi = 1e-4, 10.0
        assert lo <= res["suggested_lr"] <= hi and res["rule"]
        rng = res["lr_range"]
        if rng["diverged_at_lr"] is not None:
            assert res["suggested_lr"] < rng["diverged_at_lr"]
        # below the point where the smoothed loss is lowest (and so below divergence)
        i_min = int(np.argmin(rng["smoothed"]))
        assert res["suggested_lr"] <= rng["lrs"][i_min]
        cur = c.get(f"/jobs/{job['id']}/curves", params={"metrics": "range_lr,range_loss"}).json()
        assert len(cur["series"]["range_lr"]["value"]) == len(rng["lrs"])
        assert cur["series"]["range_lr"]["value"][0] == pytest.approx(lo)


def test_reuse_and_fork(service):
    spec = plain_spec(epochs=3, checkpoint_every=2)
    with service.client() as c:
        parent = wait_done(c, submit(c, spec)["id"])
        assert parent["status"] == "succeeded" and len(parent["spec_hash"]) == 64
        r = c.post("/jobs", params={"reuse": "true"}, json=spec)
        assert r.status_code == 200 and r.json()["id"] == parent["id"]
        other = {**spec, "training": {**spec["training"], "seed": 5}}
        r = c.post("/jobs", params={"reuse": "true"}, json=other)
        assert r.status_code == 201 and r.json()["id"] != parent["id"]
        c.post(f"/jobs/{r.json()['id']}/cancel")

        # epoch 1 has no checkpoint (checkpoint_every 2): a clear 409
        r = c.post(
            f"/jobs/{parent['id']}/fork",
            json={"from_epoch": 1, "schedule": {"decay": {"kind": "cosine"}}},
        )
        assert r.status_code == 409 and "every 2 epochs" in r.json()["error"]["message"]

        r = c.post(
            f"/jobs/{parent['id']}/fork",
            json={
                "from_epoch": 2,
                "schedule": {"decay": {"kind": "cosine"}},
                "optimizer": {"lr": 0.2},
            },
        )
        assert r.status_code == 201, r.text
        child = wait_done(c, r.json()["id"])
        assert child["status"] == "succeeded", child
        spe = parent["plan"]["steps_per_epoch"]
        assert child["lineage"]["parent"] == parent["id"] and child["lineage"]["from_epoch"] == 2
        parent = get_job(c, parent["id"])
        assert {"id": child["id"], "from_epoch": 2} in parent["lineage"]["children"]

        lr = c.get(f"/jobs/{child['id']}/curves", params={"metrics": "lr,val_acc"}).json()["series"]
        steps = lr["lr"]["step"]
        assert steps[0] >= 2 * spe  # its history starts at the fork step
        cs = JobSpec.model_validate(child["spec"])
        for t, v in zip(steps, lr["lr"]["value"], strict=True):
            assert v == pytest.approx(
                lr_at(t, lr0=0.2, schedule=cs.schedule, steps_per_epoch=spe, epochs=3)
            )
        plr = c.get(f"/jobs/{parent['id']}/curves", params={"metrics": "lr"}).json()["series"]["lr"]
        assert all(v == pytest.approx(0.05) for v in plr["value"])  # constant: the switch shows
        assert lr["val_acc"]["step"] == [3 * spe - 1]


def test_cli_sweep_watch_and_report(service, tmp_path):
    import json
    import subprocess
    import sys

    f = tmp_path / "sweep.json"
    f.write_text(
        json.dumps(
            {
                "name": "cli",
                "base": BASE,
                "grid": {"regularization.dropout": [0.0, 0.1]},
                "seeds": 2,
            }
        )
    )
    env = {**service.env, "TRICKLAB_URL": service.api_url}
    cmd = [sys.executable, "-m", "tricklab.client.cli"]
    r = subprocess.run(
        [*cmd, "sweep", str(f), "--watch"], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    sweep_id = r.stdout.splitlines()[0]
    assert "| variant" in r.stdout and "regularization.dropout=0.1" in r.stdout
    r = subprocess.run(
        [*cmd, "sweep-report", sweep_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "Welch" in r.stdout and "2/2" in r.stdout
