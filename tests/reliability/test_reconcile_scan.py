"""The reconciler's scan: one pass over the broker's real queue lists (messages that
Celery itself published to a real Redis) finds exactly the queued jobs no message names."""

from __future__ import annotations

import time

import pytest
from celery import Celery
from support import RedisServer, free_port

from tricklab.contract import TRAIN_TASK
from tricklab.server.connection import connect
from tricklab.server.store import Store
from worker.reconcile import message_job_id, missing_from_broker, reconcile

SPEC = {"data": {"dataset": "digits"}, "training": {"epochs": 2}}


@pytest.fixture
def broker(tmp_path):
    rs = RedisServer(free_port(), tmp_path, aof=False)
    rs.start()
    app = Celery("reconcile-test", broker=rs.url)
    app.conf.broker_connection_retry_on_startup = False
    try:
        yield Store(connect(rs.url), "tl", 100), app
    finally:
        app.close()
        rs.kill()


def test_missing_from_broker_names_exactly_the_jobs_without_a_message(broker):
    store, app = broker
    jobs = [store.create_job(SPEC, queue="gpu" if i % 5 == 0 else "cpu") for i in range(40)]
    lost = {j["id"] for j in jobs[::7]}
    for j in jobs:
        if j["id"] not in lost:
            app.send_task(TRAIN_TASK, args=[j["id"]], queue=j["queue"], priority=3 * (j is jobs[1]))
    app.send_task("tricklab.noop", args=[jobs[0]["id"]], queue="cpu")  # not a train message
    assert "\x06\x163" in "".join(store.r.keys("cpu*")), "a priority list is read too"
    found = missing_from_broker(store)
    assert {jid for jid, _ in found} == lost
    assert dict(found) == {j["id"]: j["queue"] for j in jobs if j["id"] in lost}


def test_message_job_id_reads_celery_messages_and_ignores_others(broker):
    store, app = broker
    app.send_task(TRAIN_TASK, args=["j0123abc"], queue="cpu")
    (raw,) = store.r.lrange("cpu", 0, -1)
    assert message_job_id(raw) == "j0123abc"
    # without the argsrepr header (another client), the body is decoded instead
    assert message_job_id(raw.replace('"argsrepr": ', '"x": ')) == "j0123abc"
    assert message_job_id("not json") is None
    assert message_job_id('{"headers": {"task": "other"}}') is None


def test_a_round_publishes_a_lost_job_after_two_sightings(broker):
    store, app = broker
    jid = store.create_job(SPEC, queue="cpu")["id"]
    args = {"after_s": 0.2, "lock_s": 0.05, "owner": "t"}
    assert reconcile(store, app, **args) == []  # first sighting
    assert store.r.hget(store.keys.reconcile_missing, jid)
    time.sleep(0.3)  # past after_s (and the 0.1 s lock)
    assert reconcile(store, app, **args) == [jid]
    assert message_job_id(store.r.lrange("cpu", 0, -1)[0]) == jid
    time.sleep(0.15)
    assert reconcile(store, app, **args) == []  # in the broker now: sighting cleared
    assert not store.r.hget(store.keys.reconcile_missing, jid)
