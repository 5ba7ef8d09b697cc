"""A search goes as a whole in the retention round: when it expired (finished, every job
past the TTL) or when DELETE /searches/{id} answered 202 and its trials have stopped since.

A real API (its driver creates the trials) and Redis; the trials are claimed and finished
by hand, as a worker would, so each case is quick and exact."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support import launch_api, minimal_spec, wait_for
from support.bare import BareApi

from tricklab.server import retention

pytestmark = pytest.mark.service

DB = 10  # test_retention's database: modules run one after the other, each flushes it
DAY = 86400.0


def trial_jobs(api: BareApi, c: httpx.Client, search_id: str, n: int) -> list[str]:
    """The job ids of the search's first n trials, once the driver has created them."""

    def created():
        s = c.get(f"/searches/{search_id}").json()
        ids = [t["job_id"] for t in s["trials"] if t.get("job_id")]
        return ids if len(ids) == n and all(api.r.exists(f"tl:job:{j}") for j in ids) else None

    return wait_for(created, 30, what=f"{n} trial jobs of {search_id}")


@pytest.fixture(scope="module")
def api(redis_server, tmp_path_factory) -> Iterator[BareApi]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        DB,
        "search-retention-api",
        TRICKLAB_RETENTION_INTERVAL_S="0",  # rounds run by hand here
        TRICKLAB_DELETE_WAIT_S="0.5",
    )
    yield BareApi(p)
    p.proc.stop()


def body(trials: int) -> dict:
    return {
        "name": "retention",
        "base": {**minimal_spec(), "training": {"epochs": 1, "batch_size": 64}},
        "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
        "algorithm": "random",
        "trials": trials,
        "max_concurrent": trials,
        "seed": 0,
    }


def test_a_finished_search_expires_as_a_whole_once_every_job_is_past_the_ttl(api):
    with api.client() as c:
        r = c.post("/searches", json=body(2))
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        jobs = trial_jobs(api, c, sid, 2)
        for j in jobs:
            api.finish(j)
        wait_for(
            lambda: c.get(f"/searches/{sid}").json()["status"] in ("succeeded", "failed"),
            30,
            what="the search to finish",
        )
        api.age(jobs[0], 40)  # one job past the 30-day TTL, the other not: the search stays
        rep = retention.run_round(api.store, api.settings())
        assert rep.searches_deleted == [] and rep.expired == []
        assert c.get(f"/searches/{sid}").status_code == 200
        assert all(c.get(f"/jobs/{j}").status_code == 200 for j in jobs)

        api.age(jobs[1], 31)
        rep = retention.run_round(api.store, api.settings(job_ttl_days=0))  # 0: kept forever
        assert rep.searches_deleted == []
        rep = retention.run_round(api.store, api.settings())
        assert rep.searches_deleted == [sid]
        assert c.get(f"/searches/{sid}").status_code == 404
        assert all(c.get(f"/jobs/{j}").status_code == 404 for j in jobs)
        assert sid not in [s["id"] for s in c.get("/searches").json()["data"]]


def test_a_delete_answered_202_finishes_in_the_round_once_the_trials_stop(api):
    with api.client() as c:
        sid = c.post("/searches", json=body(2)).json()["id"]
        done, running = trial_jobs(api, c, sid, 2)
        api.finish(done)
        attempt = api.claim(running)  # a worker holds it: DELETE cannot remove it yet
        r = c.delete(f"/searches/{sid}")
        assert r.status_code == 202, r.text
        assert r.json()["jobs"] == [running]
        assert c.get(f"/jobs/{done}").status_code == 404  # finished ones go at once
        rep = retention.run_round(api.store, api.settings())
        assert rep.searches_deleted == []  # the trial still runs
        assert c.get(f"/searches/{sid}").status_code == 200

        assert api.store.finish(running, attempt, "cancelled")  # the worker saw the cancel
        rep = retention.run_round(api.store, api.settings())
        assert rep.searches_deleted == [sid]
        assert c.get(f"/searches/{sid}").status_code == 404
        assert c.get(f"/jobs/{running}").status_code == 404


def test_an_open_search_is_never_expired(api):
    with api.client() as c:
        b = {**body(3), "max_concurrent": 1}  # trials one at a time: the search stays open
        sid = c.post("/searches", json=b).json()["id"]
        (first,) = trial_jobs(api, c, sid, 1)
        api.finish(first)
        api.age(first, 400)
        # the driver may have started trial 2 by now; either way the search is open
        rep = retention.run_round(api.store, api.settings())
        assert sid not in rep.searches_deleted
        assert c.get(f"/searches/{sid}").status_code == 200
        assert c.post(f"/searches/{sid}/cancel").status_code in (200, 202)
