"""Incremental curve polling through the real service: since/next_since is exact.

A client that polls GET /jobs/{id}/curves with `since = next_since` while a job
runs must end up with exactly the points of one full read after the job ends:
none missed (an epoch's val_* point sits at the same step as the train_loss log
point written just before evaluation) and none sent twice.
"""

from __future__ import annotations

import time

import pytest
from support import TERMINAL, long_spec, submit

pytestmark = [pytest.mark.service, pytest.mark.slow]

METRICS = [
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_ece",
    "epoch_train_loss",
    "epoch_train_acc",
]
# 1438 // 32 = 44 steps per epoch: epoch ends (43, 87, ...) are log points that are not
# multiples of log_every, and the val_* cadence differs from the train_* one.
STEPS_PER_EPOCH = 44
# Polled while the job runs, before it is cancelled: enough rounds of the race between
# the poller and the writes (train_* log points, epoch ends with their val_* points).
POLLS_RUNNING, EPOCHS_SEEN = 20, 10


def test_polling_with_next_since_equals_the_final_full_read(service, cleanup):
    spec = {**long_spec(batch_size=32, log_every=4), "name": "curves polling"}
    got: dict[str, list[tuple[int, float | None]]] = {m: [] for m in METRICS}
    polls = 0
    with service.client() as c:
        job = cleanup.job(submit(c, spec))
        job_id = job["id"]
        assert job["plan"]["steps_per_epoch"] == STEPS_PER_EPOCH
        since = None
        cancelled = False
        finished_polls = 0
        deadline = time.monotonic() + 180
        while finished_polls < 2:  # one more poll after the job is terminal
            assert time.monotonic() < deadline, "the job did not finish"
            status = c.get(f"/jobs/{job_id}").json()["status"]
            params = {"metrics": ",".join(METRICS)}
            if since is not None:
                params["since"] = str(since)
            body = c.get(f"/jobs/{job_id}/curves", params=params).json()
            for m in METRICS:
                s = body["series"][m]
                got[m].extend(zip(s["step"], s["value"], strict=True))
            if body["next_since"] is not None:
                assert since is None or body["next_since"] >= since
                since = body["next_since"]
            if status == "running":
                polls += 1
            # Seen what it needs: stop the job, and read on until it has stopped.
            if not cancelled and polls >= POLLS_RUNNING and len(got["val_acc"]) >= EPOCHS_SEEN:
                assert c.post(f"/jobs/{job_id}/cancel").status_code == 202
                cancelled = True
            if status in TERMINAL:
                assert status == "cancelled" and cancelled, status
                finished_polls += 1
            time.sleep(0.01)  # the poller's pace: a client polling as fast as it reasonably would
        full = c.get(f"/jobs/{job_id}/curves", params={"metrics": ",".join(METRICS)}).json()
    assert polls >= POLLS_RUNNING, "the poller did not see the job run"
    for m in METRICS:
        steps = [s for s, _ in got[m]]
        assert len(steps) == len(set(steps)), f"{m}: a point came twice: {steps}"
        want = list(zip(full["series"][m]["step"], full["series"][m]["value"], strict=True))
        assert got[m] == want, f"{m}: polled {len(got[m])} points, the full read has {len(want)}"
    epochs = len(got["val_acc"])
    assert epochs >= EPOCHS_SEEN
    assert [s for s, _ in got["val_acc"]] == [STEPS_PER_EPOCH * e - 1 for e in range(1, epochs + 1)]
    # next_since is the last step of any point: here the last log point before the cancel
    last = max(s["step"][-1] for s in full["series"].values() if s["step"])
    assert full["next_since"] == last == full["series"]["lr"]["step"][-1]
