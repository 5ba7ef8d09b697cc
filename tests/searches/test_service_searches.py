"""Searches end to end: a real API (whose driver samples with Optuna), a real worker,
real Redis. Digits and a tiny MLP keep every trial to a second or two."""

from __future__ import annotations

import math
import time

import httpx
import pytest
from support import assert_error, locs, plain_spec, submit, wait_done, wait_for

pytestmark = [pytest.mark.service]


def wait_search(c: httpx.Client, search_id: str, timeout: float = 300.0) -> dict:
    def done():
        s = c.get(f"/searches/{search_id}").json()
        return s if s["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout, interval=0.5, what=f"search {search_id} to finish")


def search_body(**over) -> dict:
    return {
        "name": "lr search",
        "base": plain_spec(epochs=3),
        "space": {"optimizer.lr": {"loguniform": [1e-4, 1.0]}},
        "algorithm": "random",
        "trials": 6,
        "max_concurrent": 2,
        "seed": 1,
        "metric": "val_acc",
        "mode": "max",
        **over,
    }


GRID_LRS = (1e-4, 1e-3, 1e-2, 0.1, 1.0)


@pytest.fixture(scope="module")
def working_band(service) -> tuple[float, float]:
    """The lrs where training works, by a grid run by hand: the searches' oracle.

    The base spec of the searches at each decade of their range; "works" is a final
    val_acc within 0.05 of the grid's best. The band runs half a decade past the extreme
    working grid points (the grid cannot tell where between two of its points it ends)."""
    with service.client() as c:
        ids = []
        for lr in GRID_LRS:
            spec = plain_spec(epochs=3)
            spec["optimizer"] = {"lr": lr}
            ids.append(submit(c, spec)["id"])
        accs = []
        for jid in ids:
            job = wait_done(c, jid, 120)
            assert job["status"] in ("succeeded", "failed"), job  # failed: diverged
            accs.append(job["metrics"]["val_acc"] if job["status"] == "succeeded" else 0.0)
    best = max(accs)
    works = [lr for lr, a in zip(GRID_LRS, accs, strict=True) if a >= best - 0.05]
    assert GRID_LRS[0] not in works, accs  # the range holds lrs that do not work
    return min(works) / 10**0.5, max(works) * 10**0.5


def test_random_search_finds_a_working_lr_and_confirms(service, cleanup, working_band):
    with service.client() as c:
        r = c.post("/searches", json=search_body(confirm={"top_k": 2, "seeds": 2}))
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert r.headers["Location"] == f"/searches/{sid}"
        s = wait_search(c, sid)
        assert s["status"] == "succeeded", s
        trials = s["trials"]
        assert len(trials) == 6 and all(t["state"] == "succeeded" for t in trials), trials
        # every trial is an ordinary job carrying the search id, with the sampled lr
        for t in trials:
            job = c.get(f"/jobs/{t['job_id']}").json()
            assert job["spec"]["optimizer"]["lr"] == pytest.approx(t["params"]["optimizer.lr"])
            assert 1e-4 <= t["params"]["optimizer.lr"] <= 1.0
            assert t["epochs_spent"] == 3
        # the best is the trial with the highest final val_acc (an oracle from the jobs)
        accs = {
            t["job_id"]: c.get(f"/jobs/{t['job_id']}").json()["metrics"]["val_acc"] for t in trials
        }
        best_job = max(accs, key=accs.get)
        assert s["best"]["job_id"] == best_job and s["best"]["metric"] == pytest.approx(
            accs[best_job]
        )
        # the best lr lies where the hand-run grid says training works
        lo, hi = working_band
        assert lo <= s["best"]["params"]["optimizer.lr"] <= hi, (working_band, s["best"])
        assert s["budget"] == {
            "epochs_spent": 18,
            "epochs_full": 18,
            "fraction": 1.0,
            "cooldown_epochs": 0,
            "confirm_epochs": 12,
        }
        # confirm: the top 2 distinct configurations, 2 fresh seeds each (not the trial's seed 0)
        conf = s["confirm"]
        assert len(conf["rows"]) == 2
        ranked = sorted(trials, key=lambda t: t["metric"], reverse=True)
        assert [row["trial"] for row in conf["rows"]] == [ranked[0]["number"], ranked[1]["number"]]
        for row in conf["rows"]:
            assert [j["seed"] for j in row["jobs"]] == [1, 2]
            assert row["n"] == 2 and all(j["status"] == "succeeded" for j in row["jobs"])
            vals = [c.get(f"/jobs/{j['job_id']}").json()["metrics"]["val_acc"] for j in row["jobs"]]
            assert row["mean"] == pytest.approx(sum(vals) / 2)
            assert row["std"] == pytest.approx(math.sqrt(sum((v - row["mean"]) ** 2 for v in vals)))
        assert conf["winner"]["beats_runner_up"] in ("yes", "no")
        assert "beyond seed noise" in conf["winner"]["sentence"]
        listed = c.get("/searches").json()["data"]
        assert listed[0]["id"] == sid and listed[0]["status"] == "succeeded"


def test_tpe_search_with_choices_and_importance(service, cleanup, working_band):
    body = search_body(
        algorithm="tpe",
        trials=8,
        space={
            "optimizer.lr": {"loguniform": [1e-3, 1.0]},
            "regularization.mixup": {"choice": [None, {"alpha": 0.2}]},
            "schedule.warmup.epochs": {"int": [0, 1]},
        },
    )
    with service.client() as c:
        r = c.post("/searches", json=body)
        assert r.status_code == 201, r.text
        s = wait_search(c, r.json()["id"])
        assert s["status"] == "succeeded", s
        assert len(s["trials"]) == 8
        mixups = {str(t["params"]["regularization.mixup"]) for t in s["trials"]}
        assert mixups <= {"None", "{'alpha': 0.2}"}
        for t in s["trials"]:
            spec = c.get(f"/jobs/{t['job_id']}").json()["spec"]
            want, got = t["params"]["regularization.mixup"], spec["regularization"]["mixup"]
            assert got == want if want is None else got == {**got, **want}  # + defaults
            assert spec["schedule"]["warmup"]["epochs"] == t["params"]["schedule.warmup.epochs"]
        lo, hi = working_band  # the grid's band, found without mixup or warm-up
        assert lo <= s["best"]["params"]["optimizer.lr"] <= hi, (working_band, s["best"])
        imp = s["importance"]
        assert set(imp) <= set(body["space"]) and imp, s
        assert math.isclose(sum(imp.values()), 1.0, abs_tol=1e-3)


def test_grid_search_visits_each_point_once(service, cleanup):
    body = search_body(
        algorithm="grid",
        trials=50,  # capped at the grid's size
        space={
            "optimizer.lr": {"choice": [0.01, 0.1, 0.5]},
            "training.batch_size": {"choice": [32, 64]},
        },
        max_concurrent=3,
    )
    with service.client() as c:
        r = c.post("/searches", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["trials_planned"] == 6
        s = wait_search(c, r.json()["id"])
        points = sorted(
            (t["params"]["optimizer.lr"], t["params"]["training.batch_size"]) for t in s["trials"]
        )
        assert points == sorted((lr, b) for lr in (0.01, 0.1, 0.5) for b in (32, 64))
        # DELETE takes the search and every trial's job with it; a trial alone is a 409
        sid, job_id = s["id"], s["trials"][0]["job_id"]
        assert c.delete(f"/jobs/{job_id}").status_code == 409
        assert c.delete(f"/searches/{sid}").status_code == 204
        assert c.get(f"/searches/{sid}").status_code == 404
        for t in s["trials"]:
            assert c.get(f"/jobs/{t['job_id']}").status_code == 404
        assert c.delete(f"/searches/{sid}").status_code == 404
        assert sid not in [x["id"] for x in c.get("/searches").json()["data"]]


def test_invalid_search_is_422_naming_the_path(service):
    with service.client() as c:
        # warm-up up to 5 epochs in a 3-epoch run: the end of the range is not a valid job
        err = assert_error(
            c.post(
                "/searches", json=search_body(space={"schedule.warmup.epochs": {"int": [0, 5]}})
            ),
            422,
        )
        assert locs(err)[0][:3] == ["body", "space", "schedule.warmup.epochs"], err
        err = assert_error(
            c.post("/searches", json=search_body(space={"optimizer.nope": {"uniform": [0, 1]}})),
            422,
        )
        assert locs(err)[0][:3] == ["body", "space", "optimizer.nope"], err
        err = assert_error(
            c.post("/searches", json=search_body(space={"optimizer.lr": {"loguniform": [0, 1]}})),
            422,
        )
        assert "space" in str(locs(err)[0]), err
        err = assert_error(c.post("/searches", json=search_body(algorithm="grid")), 422)
        assert "grid" in err["message"] or "grid" in str(err["details"])
        bad_base = search_body(base={**plain_spec(), "training": {"epochs": 0}})
        err = assert_error(c.post("/searches", json=bad_base), 422)
        assert locs(err)[0][:4] == ["body", "base", "training", "epochs"], err
        assert c.get("/searches/q0123456789abcdef0123").status_code == 404


def test_cancel_stops_new_trials(service, cleanup):
    with service.client() as c:
        body = search_body(trials=20, max_concurrent=1, base=plain_spec(epochs=30))
        sid = c.post("/searches", json=body).json()["id"]
        wait_for(lambda: c.get(f"/searches/{sid}").json()["trials"], 30, what="a first trial")
        r = c.post(f"/searches/{sid}/cancel")
        assert r.status_code == 202, r.text
        s = wait_search(c, sid, 120)
        assert s["status"] == "cancelled"
        n = len(s["trials"])
        time.sleep(3)  # the driver polls every 2 s: nothing new may start
        assert len(c.get(f"/searches/{sid}").json()["trials"]) == n
        assert all(t["state"] in ("cancelled", "succeeded") for t in s["trials"]), s["trials"]
