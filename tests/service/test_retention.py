"""Retention (tricklab.server.retention) against a real API process, Redis and worker:
finished jobs expire after TRICKLAB_JOB_TTL_DAYS, per-epoch checkpoints shrink to the
newest and the best once the grace period is over, stale worker records and broker
messages of jobs that can no longer start go, and a job killed mid-run still resumes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from support import (
    events,
    launch_api,
    minimal_spec,
    plain_spec,
    reliability_spec,
    submit,
    wait_done,
    wait_epoch,
    wait_for,
    wait_job,
)
from support.bare import BareApi

from tricklab.server import retention
from tricklab.server.connection import connect
from tricklab.server.store import Store
from tricklab.settings import Settings

pytestmark = pytest.mark.service

DB = 10  # 0 service, 1 api, 5/6 security, 7 dashboard auth, 9 delete, 11-14 others
TICKING_DB = 8
DAY = 86400.0


class Bare(BareApi):
    def finished_job(self, c: httpx.Client, status: str = "succeeded", **spec) -> str:
        jid = submit(c, {**minimal_spec(), **spec})["id"]
        self.finish(jid, status)
        return jid


@pytest.fixture(scope="module")
def bare(redis_server, tmp_path_factory) -> Iterator[Bare]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        DB,
        "retention-api",
        TRICKLAB_RETENTION_INTERVAL_S="0",  # rounds run by hand here
        TRICKLAB_MAX_ACTIVE_JOBS="1000",
    )
    yield Bare(p)
    p.proc.stop()


def test_finished_jobs_expire_after_the_ttl_and_newer_ones_stay(bare):
    with bare.client() as c:
        old = bare.finished_job(c)
        old_failed = bare.finished_job(c, "failed")
        young = bare.finished_job(c)
        queued = submit(c, minimal_spec())["id"]
        bare.age(old, 31)
        bare.age(old_failed, 30.5)
        bare.age(young, 29)
        bare.r.hset(f"tl:job:{queued}", "created_at", f"{time.time() - 90 * DAY:.6f}")
        (bare.artifact_dir / "jobs" / old).mkdir(parents=True)
        rep = retention.run_round(bare.store, bare.settings())  # default: 30 days
        assert sorted(rep.expired) == sorted([old, old_failed])
        assert c.get(f"/jobs/{old}").status_code == 404
        assert c.get(f"/jobs/{old_failed}").status_code == 404
        assert not (bare.artifact_dir / "jobs" / old).exists()
        assert c.get(f"/jobs/{young}").status_code == 200
        assert c.get(f"/jobs/{queued}").json()["status"] == "queued"  # never expires unfinished
        assert not bare.r.exists(f"tl:job:{old}:ev")
        c.post(f"/jobs/{queued}/cancel")


def test_ttl_zero_keeps_finished_jobs_forever(bare):
    with bare.client() as c:
        jid = bare.finished_job(c)
        bare.age(jid, 3650)
        rep = retention.run_round(bare.store, bare.settings(job_ttl_days=0))
        assert jid not in rep.expired
        assert c.get(f"/jobs/{jid}").status_code == 200


def test_a_sweep_expires_as_a_whole_once_every_child_is_due(bare):
    body = {"base": plain_spec(), "grid": {"optimizer.lr": [0.05, 0.1]}, "max_concurrent": 2}
    with bare.client() as c:
        sweep = c.post("/sweeps", json=body).json()
        sid = sweep["id"]
        kids = [j["job_id"] for v in sweep["variants"] for j in v["jobs"]]
        wait_for(lambda: all(bare.r.exists(f"tl:job:{k}") for k in kids), 20, what="children")
        for k in kids:
            attempt, _ = bare.store.claim(k, "test-worker", lease_s=60, max_attempts=3)
            bare.store.finish(k, attempt, "succeeded")
        bare.age(kids[0], 40)  # one child due, the other not: the sweep stays whole
        assert retention.run_round(bare.store, bare.settings()).sweeps_deleted == []
        assert all(c.get(f"/jobs/{k}").status_code == 200 for k in kids)
        bare.age(kids[1], 35)
        rep = retention.run_round(bare.store, bare.settings())
        assert rep.sweeps_deleted == [sid]
        assert c.get(f"/sweeps/{sid}").status_code == 404
        assert all(c.get(f"/jobs/{k}").status_code == 404 for k in kids)


def test_stale_worker_records_are_pruned_live_ones_kept(bare):
    r = bare.r
    now = time.time()
    r.zadd("tl:workers", {"ghost@host": now - 3600, "live@host": now})
    r.hset("tl:worker:ghost@host", "info", "{}")
    s = bare.settings(worker_ttl_s=15.0, worker_prune_after=20)  # 300 s without a beat
    rep = retention.run_round(bare.store, s)
    assert rep.workers_pruned == ["ghost@host"]
    assert r.zscore("tl:workers", "ghost@host") is None
    assert not r.exists("tl:worker:ghost@host")
    assert r.zscore("tl:workers", "live@host") is not None
    r.zrem("tl:workers", "live@host")


def test_broker_messages_of_jobs_that_cannot_start_are_removed(bare):
    """No worker consumes this API's queue: the messages of cancelled jobs stayed forever."""
    with bare.client() as c:
        cancelled = submit(c, minimal_spec())["id"]
        waiting = submit(c, minimal_spec())["id"]
        assert c.post(f"/jobs/{cancelled}/cancel").status_code == 202

        def mentioned(jid: str) -> int:
            return sum(jid in m for m in bare.r.lrange("cpu", 0, -1))

        assert mentioned(cancelled) == 1 and mentioned(waiting) == 1
        rep = retention.run_round(bare.store, bare.settings())
        assert rep.messages_removed >= 1
        assert mentioned(cancelled) == 0
        assert mentioned(waiting) == 1  # a queued job keeps its wake-up call
        c.post(f"/jobs/{waiting}/cancel")


def plant_checkpoints(bare: Bare, job_id: str, epochs: int, spe: int) -> tuple:
    d = bare.artifact_dir / "jobs" / job_id / "checkpoints"
    (d / "epochs").mkdir(parents=True)
    for e in range(1, epochs + 1):
        (d / "epochs" / f"epoch-{e:05d}.pt").write_bytes(b"x" * 1000)
    for step in ((epochs - 1) * spe, epochs * spe):  # the rolling "keep 2" set
        (d / f"ckpt-{step:09d}.pt").write_bytes(b"x" * 1000)
    return d, d / "epochs"


def test_last_policy_keeps_the_newest_and_best_checkpoints_after_the_grace(bare):
    with bare.client() as c:
        jid = bare.finished_job(c)
        bare.r.hset(f"tl:job:{jid}", "best", '{"val_acc": 0.9, "epoch": 1}')  # 0-based
        d, pinned = plant_checkpoints(bare, jid, 5, 22)
        # inside the grace period (default 24 h): every epoch can still be forked from
        rep = retention.run_round(bare.store, bare.settings())
        assert len(list(pinned.iterdir())) == 5 and rep.checkpoint_bytes_freed == 0
        bare.age(jid, 2)
        rep = retention.run_round(bare.store, bare.settings())
        assert sorted(p.name for p in pinned.iterdir()) == ["epoch-00002.pt", "epoch-00005.pt"]
        assert sorted(p.name for p in d.glob("ckpt-*.pt")) == ["ckpt-000000110.pt"]
        assert rep.checkpoint_bytes_freed == 4000
        r = c.get(f"/jobs/{jid}/checkpoints")
        assert r.status_code == 200
        assert [x["epoch"] for x in r.json()["data"]] == [2, 5]


def test_epochs_policy_keeps_every_checkpoint(bare):
    with bare.client() as c:
        jid = bare.finished_job(c)
        bare.age(jid, 2)
        d, pinned = plant_checkpoints(bare, jid, 4, 22)
        retention.run_round(bare.store, bare.settings(retain_checkpoints="epochs"))
        assert len(list(pinned.iterdir())) == 4 and len(list(d.glob("ckpt-*.pt"))) == 2


def test_the_api_runs_retention_rounds_by_itself(redis_server, tmp_path_factory):
    """TRICKLAB_RETENTION_INTERVAL_S: the API process deletes an expired job unasked."""
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        TICKING_DB,
        "retention-ticking-api",
        TRICKLAB_RETENTION_INTERVAL_S="0.5",
        TRICKLAB_JOB_TTL_DAYS="1",
    )
    try:
        store = Store(connect(p.redis_url), "tl")
        with httpx.Client(base_url=p.url, timeout=60) as c:
            jid = submit(c, minimal_spec())["id"]
            attempt, _ = store.claim(jid, "test-worker", lease_s=60, max_attempts=3)
            store.finish(jid, attempt, "succeeded")
            store.r.hset(f"tl:job:{jid}", "finished_at", f"{time.time() - 2 * DAY:.6f}")
            wait_for(lambda: c.get(f"/jobs/{jid}").status_code == 404, 30, what="expiry")
    finally:
        p.proc.stop()


@pytest.mark.slow
def test_a_job_killed_mid_run_still_resumes_under_the_default_retention(service):
    """Retention rounds (default policy, no grace) while a job runs and after its pool
    child is killed leave its checkpoints alone: the next attempt resumes from one."""
    s = Settings(
        REDIS_URL=service.redis.url, ARTIFACT_DIR=str(service.artifact_dir),
        checkpoint_grace_hours=0,
    )  # fmt: skip
    store = Store(connect(service.redis.url), "tl")
    r = service.redis.client()
    with service.client() as c:
        jid = submit(c, reliability_spec(epochs=8))["id"]
        wait_epoch(c, jid, 3, timeout=180)
        d = service.artifact_dir / "jobs" / jid / "checkpoints"
        pinned = lambda: {p.name for p in d.rglob("epoch-*.pt")}  # noqa: E731
        rolling = lambda: sorted(p.name for p in d.glob("ckpt-*.pt"))  # noqa: E731
        before = pinned()
        assert rolling() and before, (rolling(), before)
        retention.run_round(store, s)
        # nothing of a running job goes: every pinned epoch stays, and the rolling set is
        # still the trainer's own newest two (it rolls on by itself as training goes on)
        assert before <= pinned(), (before, pinned())
        assert 1 <= len(rolling()) <= 2, rolling()
        os.kill(int(r.hget(f"tl:job:{jid}", "worker_pid")), signal.SIGKILL)
        retention.run_round(store, s)  # while it waits to be re-queued and claimed again
        wait_job(c, jid, lambda j: j["attempts"] >= 2, 120, "attempt 2")
        done = wait_done(c, jid, timeout=300)
        assert done["status"] == "succeeded", done
        starts = [e for t, e in events(r, jid) if t == "start"]
        assert starts[-1].get("resumed_from_step", 0) > 0, starts
        retention.run_round(store, s)  # finished: now it shrinks to the newest + best
        pinned = sorted(p.name for p in (d / "epochs").iterdir())
        best = done["best"]["epoch"] + 1
        assert pinned == sorted({f"epoch-{best:05d}.pt", "epoch-00008.pt"}), pinned
        assert len(list(d.glob("ckpt-*.pt"))) == 1
