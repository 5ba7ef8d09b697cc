"""Incremental curve polling through the real service: since/next_since is exact.

A client that polls GET /jobs/{id}/curves with `since = next_since` while a job
runs must end up with exactly the points of one full read after the job ends:
none missed (an epoch's val_* point sits at the same step as the train_loss log
point written just before evaluation) and none sent twice.
"""

from __future__ import annotations

import time

import pytest

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


EPOCHS = 40  # long enough (a few seconds) that the poller sees the job run


def test_polling_with_next_since_equals_the_final_full_read(service):
    spec = {
        "name": "curves polling",
        "data": {"dataset": "digits"},
        "model": {"arch": "mlp", "hidden": [64]},
        # 1438 // 32 = 44 steps per epoch: epoch ends (43, 87, ...) are log points
        # that are not multiples of log_every, and val_* cadence differs from train_*
        "training": {"epochs": EPOCHS, "batch_size": 32, "device": "cpu", "log_every": 4},
    }
    got: dict[str, list[tuple[int, float | None]]] = {m: [] for m in METRICS}
    polls = 0
    with service.client() as c:
        r = c.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        since = None
        finished_polls = 0
        deadline = time.monotonic() + 180
        while finished_polls < 2:  # one more poll after the job is terminal
            assert time.monotonic() < deadline, "the job did not finish"
            status = c.get(f"/jobs/{job_id}").json()["status"]
            params = {"metrics": ",".join(METRICS)}
            if since is not None:
                params["since"] = str(since)
            body = c.get(f"/jobs/{job_id}/curves", params=params).json()
            polls += 1
            for m in METRICS:
                s = body["series"][m]
                got[m].extend(zip(s["step"], s["value"], strict=True))
            if body["next_since"] is not None:
                assert since is None or body["next_since"] >= since
                since = body["next_since"]
            if status in ("succeeded", "failed", "cancelled"):
                assert status == "succeeded"
                finished_polls += 1
            time.sleep(0.01)
        full = c.get(f"/jobs/{job_id}/curves", params={"metrics": ",".join(METRICS)}).json()
    assert polls > 10, "the job finished before the poller saw it run"
    for m in METRICS:
        steps = [s for s, _ in got[m]]
        assert len(steps) == len(set(steps)), f"{m}: a point came twice: {steps}"
        want = list(zip(full["series"][m]["step"], full["series"][m]["value"], strict=True))
        assert got[m] == want, f"{m}: polled {len(got[m])} points, the full read has {len(want)}"
    assert [s for s, _ in got["val_acc"]] == [44 * e - 1 for e in range(1, EPOCHS + 1)]
    assert full["next_since"] == EPOCHS * 44 - 1
