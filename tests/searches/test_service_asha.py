"""ASHA over real jobs: rungs in epochs, trials paused at each rung (a job that stops
there) and judged by a cool-down fork (or their raw metric), promoted by a fork that
goes on, or stopped early."""

from __future__ import annotations

import math

import httpx
import pytest
from support import plain_spec, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]

EPOCHS = 9  # rungs at 1 and 3 epochs (min_epochs 1, eta 3)


def body(judge: str) -> dict:
    return {
        "name": f"asha {judge}",
        "base": {**plain_spec(epochs=EPOCHS), "schedule": {"decay": {"kind": "cosine"}}},
        "space": {"optimizer.lr": {"loguniform": [1e-4, 1.0]}},
        "algorithm": "random",
        "trials": 8,
        "max_concurrent": 2,
        "seed": 3,
        "early_stopping": {"kind": "asha", "min_epochs": 1, "reduction_factor": 3, "judge": judge},
    }


def run(c: httpx.Client, judge: str) -> dict:
    r = c.post("/searches", json=body(judge))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    return wait_for(
        lambda: (s := c.get(f"/searches/{sid}").json())["status"] in ("succeeded", "failed") and s,
        600,
        0.5,
        what=f"ASHA search ({judge})",
    )


def check_asha(s: dict) -> None:
    assert s["status"] == "succeeded", s
    assert s["early_stopping"]["rungs"] == [1, 3]
    states = [t["state"] for t in s["trials"]]
    assert set(states) <= {"succeeded", "stopped_early"}, states
    stopped = [t for t in s["trials"] if t["state"] == "stopped_early"]
    assert stopped and any(t["rung"] == 1 for t in stopped), s["trials"]
    full = [t for t in s["trials"] if t["state"] == "succeeded"]
    assert full and all(t["metric"] is not None and t["rung"] == 2 for t in full)
    assert s["best"]["number"] in [t["number"] for t in full]
    b = s["budget"]
    assert b["epochs_spent"] < b["epochs_full"] == 8 * EPOCHS, b
    for t in full:  # each promoted trial ran its whole schedule, once
        assert t["epochs_spent"] == EPOCHS + b_cool(t), t


def b_cool(t: dict) -> int:
    return len(t["cooldown_jobs"])  # every cool-down here is one epoch (20% of a rung, >= 1)


def test_asha_with_cooldown_judge(service, cleanup):
    with service.client() as c:
        s = run(c, "cooldown")
        check_asha(s)
        # the cool-down fork: from the rung checkpoint, lr from its planned value at the
        # rung linearly to zero over one epoch (a hand-computed cosine and line)
        t = next(t for t in s["trials"] if t["cooldown_jobs"])
        cool = c.get(f"/jobs/{t['cooldown_jobs'][0]}").json()
        rung = cool["lineage"]["from_epoch"]
        assert rung == 1 and cool["lineage"]["parent"] == t["jobs"][0]
        spe = cool["plan"]["steps_per_epoch"]
        lr0, total = t["params"]["optimizer.lr"], EPOCHS * spe
        lr_r = lr0 * 0.5 * (1 + math.cos(math.pi * rung * spe / total))
        got = c.get(f"/jobs/{cool['id']}/lr").json()["actual"]
        assert got["step"] and all(rung * spe <= st < (rung + 1) * spe for st in got["step"])
        for st, lr in zip(got["step"], got["lr"], strict=True):
            assert lr == pytest.approx(lr_r * (1 - (st - rung * spe) / spe), rel=1e-6), st
        # a promoted trial goes on from the pre-cool-down checkpoint: its next segment's
        # parent is the rung segment, not the cool-down
        promoted = next(t for t in s["trials"] if t["state"] == "succeeded")
        nxt = c.get(f"/jobs/{promoted['jobs'][1]}").json()
        assert nxt["lineage"]["parent"] == promoted["jobs"][0]
        assert nxt["spec"]["schedule"]["decay"]["kind"] == "cosine"
        # the trial's curve joins its segments: one val_acc point per epoch, 1..EPOCHS
        curves = c.get(f"/searches/{s['id']}/curves", params={"metric": "val_acc"}).json()
        pc = next(x for x in curves["trials"] if x["number"] == promoted["number"])
        assert pc["step"] == [(e + 1) * spe - 1 for e in range(EPOCHS)], pc
        assert len(pc["cooldowns"]) == len(promoted["cooldown_jobs"])


def test_asha_raw_judge_has_no_cooldowns(service, cleanup):
    with service.client() as c:
        s = run(c, "raw")
        check_asha(s)
        assert all(not t["cooldown_jobs"] for t in s["trials"])
        assert s["budget"]["cooldown_epochs"] == 0
