"""A search survives kill -9 of its API (which drives it) and its worker mid-search: after
both restart it finishes with exactly the trials it asked for, none run twice."""

from __future__ import annotations

import signal

import httpx
import pytest
from support import Cluster, RedisServer, cluster_env, free_port, plain_spec, start_api, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]

TRIALS = 6


def test_kill_api_and_worker_mid_search(tmp_path):
    rs = RedisServer(free_port(), tmp_path / "redis", fsync="always")
    (tmp_path / "redis").mkdir()
    rs.start()
    env = cluster_env(rs.url, tmp_path / "art")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = start_api(env, tmp_path / "api.log", port)
    c = Cluster(rs, api, url, env, tmp_path, tmp_path / "art")
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60)
        w = c.add_worker()
        c.wait_ready(w)
        body = {
            "base": plain_spec(epochs=6),
            "space": {"optimizer.lr": {"loguniform": [1e-2, 0.5]}},
            "algorithm": "tpe",
            "trials": TRIALS,
            "max_concurrent": 2,
            "confirm": {"top_k": 1, "seeds": 2},
        }
        with c.client() as http:
            sid = http.post("/searches", json=body).json()["id"]
            wait_for(
                lambda: (
                    sum(
                        t["state"] == "succeeded"
                        for t in http.get(f"/searches/{sid}").json()["trials"]
                    )
                    >= 2
                ),
                120,
                0.2,
                what="two finished trials",
            )
        # mid-search: both processes die at once, no clean shutdown
        api.signal(signal.SIGKILL)
        w.signal(signal.SIGKILL)
        api.proc.wait(10)
        w.proc.wait(10)
        api = start_api(env, tmp_path / "api2.log", port)
        c.api = api
        c.add_worker()
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60)
        with c.client() as http:
            s = wait_for(
                lambda: (s := http.get(f"/searches/{sid}").json())["status"] == "succeeded" and s,
                300,
                0.5,
                what="the search to finish after the restart",
            )
            ids = [t["job_id"] for t in s["trials"]]
            assert len(s["trials"]) == TRIALS and len(set(ids)) == TRIALS, s["trials"]
            assert [t["number"] for t in s["trials"]] == list(range(TRIALS))
            assert all(t["state"] == "succeeded" for t in s["trials"]), s["trials"]
            confirm = [j["job_id"] for row in s["confirm"]["rows"] for j in row["jobs"]]
            assert len(confirm) == 2
            # every job in the store belongs to the search exactly once: none ran twice
            jobs = http.get("/jobs", params={"limit": 200}).json()["data"]
            assert sorted(j["id"] for j in jobs) == sorted(ids + confirm)
    finally:
        c.stop_workers()
        api.stop()
        rs.kill()
