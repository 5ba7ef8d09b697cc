"""Workers die (kill -9 of the pool child, of the whole worker) and nothing is lost."""

from __future__ import annotations

import os
import signal
import time

import pytest
from celery import Celery
from support import (
    LEASE_TTL_S,
    LONG_TRAINING,
    MAX_RESTARTS,
    assert_attempts_never_overlap,
    assert_curves_continuous,
    events,
    get_job,
    reliability_spec,
    statuses,
    submit,
    wait_done,
    wait_epoch,
    wait_job,
)

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _same_result(done: dict, ref: dict) -> None:
    for k in ("val_acc", "val_loss"):
        assert done["metrics"][k] == ref["metrics"][k], (k, done["metrics"], ref["metrics"])
    assert done["best"] == ref["best"]


def _attempt_2_running(j: dict) -> bool:
    return j["attempts"] == 2 and j["status"] == "running"


def test_pool_child_sigkill_resumes_from_checkpoint_exactly(rel, reference):
    r = rel.redis.client()
    w = rel.add_worker()
    with rel.client() as c:
        jid = submit(c, reliability_spec())["id"]
        wait_epoch(c, jid, 3)
        pid = int(r.hget(f"tl:job:{jid}", "worker_pid"))
        assert pid != w.proc.pid, "the job runs in a pool child"
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        wait_job(c, jid, _attempt_2_running, 30, "attempt 2")
        recovery = time.monotonic() - t0
        done = wait_done(c, jid)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        assert statuses(r, jid) == ["queued", "running", "queued", "running", "succeeded"]
        assert_attempts_never_overlap(r, jid)
        assert_curves_continuous(c, done)
        _same_result(done, reference["job"])
        # the resumed attempt started from a checkpoint, not from scratch
        starts = [d for t, d in events(r, jid) if t == "start"]
        assert starts[1]["resumed_from_step"] > 0, starts
        print(f"pool child SIGKILL: attempt 2 running after {recovery:.2f}s")
        # Celery re-delivers at once (reject_on_worker_lost) and the new child takes over
        # from the dead holder (0.3 s); when that delivery lags, the reaper re-queues the job
        # once its lease lapsed: lease + one reaper round (WORKER_TTL_S/3 = 1 s) + a start.
        # Either way far below the broker's 25 h visibility timeout.
        assert recovery < LEASE_TTL_S + 1 + 2

        # a late duplicate delivery of a finished job is a no-op
        app = Celery(broker=rel.redis.url, set_as_current=False)
        app.send_task("tricklab.train", args=[jid], queue="cpu")
        # the one worker takes messages in order: once a job sent after the duplicate has
        # run, the duplicate has been delivered and dropped
        probe = submit(c, reliability_spec(epochs=2))["id"]
        assert wait_done(c, probe)["status"] == "succeeded"
        again = get_job(c, jid)
        assert (again["status"], again["attempts"]) == ("succeeded", 2)
        assert statuses(r, jid)[-1] == "succeeded"


def test_whole_worker_sigkill_lease_reaper_requeues_and_another_worker_resumes(rel, reference):
    r = rel.redis.client()
    # Both workers up before the job exists: starting one (torch import) can take
    # longer than this whole job, so none may start between submit and kill.
    workers = [rel.add_worker(), rel.add_worker()]
    for w in workers:
        rel.wait_ready(w)
    with rel.client() as c:
        jid = submit(c, reliability_spec())["id"]
        wait_epoch(c, jid, 2)
        holder_name = r.hget(f"tl:job:{jid}", "worker").split("@")[0]
        (w1,) = [w for w in workers if w.name == holder_name]  # type: ignore[attr-defined]
        w1.signal(signal.SIGKILL)  # host loss: parent and child at once, nothing acked
        t0 = time.monotonic()
        w1.proc.wait(10)
        # a checkpoint write cut short by the kill: a stray temp file and a truncated
        # "newer" checkpoint must both be ignored by the resume
        ck = rel.artifact_dir / "jobs" / jid / "checkpoints"
        newest = sorted(ck.glob("ckpt-*.pt"))[-1]
        (ck / f".{newest.name}.999.tmp").write_bytes(newest.read_bytes()[:1000])
        (ck / "ckpt-000099999.pt").write_bytes(newest.read_bytes()[:2000])
        wait_job(c, jid, _attempt_2_running, 30, "attempt 2")
        recovery = time.monotonic() - t0
        done = wait_done(c, jid)
        assert done["status"] == "succeeded", done
        assert statuses(r, jid) == ["queued", "running", "queued", "running", "succeeded"]
        assert_attempts_never_overlap(r, jid)
        assert_curves_continuous(c, done)
        _same_result(done, reference["job"])
        print(f"whole worker SIGKILL: attempt 2 running on another worker after {recovery:.2f}s")
        # lease (3 s) + one reaper round (worker_ttl/3 = 1 s) + startup slack
        assert recovery < LEASE_TTL_S + 1 + 3


def test_a_job_that_keeps_crashing_fails_after_max_restarts(rel):
    r = rel.redis.client()
    w = rel.add_worker()
    with rel.client() as c:
        # never reaches its end: every attempt is killed once it has made progress
        jid = submit(c, reliability_spec(**LONG_TRAINING))["id"]
        for attempt in range(1, MAX_RESTARTS + 2):
            wait_job(
                c,
                jid,
                lambda j, a=attempt: (
                    j["attempts"] == a
                    and j["status"] == "running"
                    and (j.get("progress") or {}).get("step", 0) > 0
                ),
                30,
                f"attempt {attempt}",
            )
            os.kill(int(r.hget(f"tl:job:{jid}", "worker_pid")), signal.SIGKILL)
        done = wait_done(c, jid, 30)
        assert done["status"] == "failed", done
        assert done["error"]["type"] == "crashed"
        assert "max_restarts" in done["error"]["message"]
        assert done["attempts"] == MAX_RESTARTS + 1
        # and it stays failed, no crash loop: re-deliveries of the killed attempts come
        # before a job sent now, so once that one has run they have all been dropped
        probe = submit(c, reliability_spec(epochs=2))["id"]
        assert wait_done(c, probe)["status"] == "succeeded", w.tail()
        assert get_job(c, jid)["status"] == "failed"
        assert_attempts_never_overlap(r, jid)
