"""Lengths in epochs that round to nothing in steps are a 422 naming the field, the
realised count and the steps per epoch; the realised step counts appear in the preview
and in the job plan; an unset step/multistep decay defaults to fractions of training.

Against the real API (uvicorn, a private Redis database). digits with batch 64 has
22 steps per epoch (1437 training samples); the counts below are hand-computed."""

from __future__ import annotations

import pytest
from support import assert_error, locs, minimal_spec


def preview(client, schedule, epochs=10, spe=7):
    body = {"lr": 0.1, "epochs": epochs, "steps_per_epoch": spe, "schedule": schedule}
    return client.post("/schedules/preview", json=body)


@pytest.mark.parametrize(
    ("schedule", "loc", "words"),
    [
        # 0.05 × 7 = 0.35 steps → 0: no warm-up at all
        ({"warmup": {"epochs": 0.05}}, ["schedule", "warmup", "epochs"], ["0 steps", "7 steps"]),
        # 1.99 × 7 = 13.9 → 14 steps: the whole 2-epoch run (a 500 before)
        ({"warmup": {"epochs": 1.99}}, ["schedule", "warmup", "epochs"], ["14 steps", "whole"]),
        # per epoch the lr changes once an epoch: 0.4 would restart every epoch (constant lr)
        (
            {"per": "epoch", "decay": {"kind": "cosine_restarts", "t0_epochs": 0.4}},
            ["schedule", "decay", "t0_epochs"],
            ["whole number", "0.4"],
        ),
        (
            {"decay": {"kind": "cosine_restarts", "t0_epochs": 0.05}},
            ["schedule", "decay", "t0_epochs"],
            ["0 steps", "7 steps"],
        ),
    ],
)
def test_preview_refuses_what_rounds_to_nothing(client, schedule, loc, words):
    epochs = 2 if schedule.get("warmup", {}).get("epochs") == 1.99 else 10
    err = assert_error(preview(client, schedule, epochs=epochs), 422)
    assert loc in locs(err), err
    text = str(err)
    assert all(w in text for w in words), text


def test_preview_shows_the_realised_steps(client):
    # 1.5 × 7 = 10.5 → 10 steps (round half to even), not 10.5
    r = preview(client, {"warmup": {"epochs": 1.5}, "decay": {"kind": "cosine"}})
    assert r.status_code == 200, r.text
    sched = r.json()["schedule"]
    assert sched["warmup_steps"] == 10 and sched["decay_steps"] == 60
    assert sched["steps_per_epoch"] == 7 and sched["total_steps"] == 70
    assert r.json()["lr"][9] == pytest.approx(0.1) and r.json()["lr"][8] < 0.1
    # cosine restarts of 0.4 epochs per batch: 0.4 × 7 = 2.8 → 3 steps, doubling
    r = preview(client, {"decay": {"kind": "cosine_restarts", "t0_epochs": 0.4, "t_mult": 2}}, 2)
    sched = r.json()["schedule"]
    assert sched["first_cycle_steps"] == 3
    assert sched["restart_steps"] == [0, 3, 9] and sched["cycles"] == 3  # 3 + 6 + 12 > 14
    # the default step decay: every ceil(10 / 3) = 4 epochs → steps 28 and 56
    sched = preview(client, {"decay": {"kind": "step"}}).json()["schedule"]
    assert sched["decay_epochs"] == [4, 8] and sched["decay_boundaries"] == [28, 56]


def test_job_plan_carries_the_realised_steps_and_rejects_rounding(client):
    spec = {
        **minimal_spec(),
        "schedule": {"warmup": {"epochs": 1.5}, "decay": {"kind": "multistep"}},
    }
    r = client.post("/jobs", json=spec)
    assert r.status_code == 201, r.text
    sched = r.json()["plan"]["schedule"]
    # 1.5 × 22 = 33 steps; multistep defaults at floor(3/2) = 1 and floor(9/4) = 2 epochs
    assert sched["warmup_steps"] == 33 and sched["steps_per_epoch"] == 22
    assert sched["decay_epochs"] == [1, 2] and sched["decay_boundaries"] == [22, 44]
    got = client.get(f"/jobs/{r.json()['id']}").json()["plan"]["schedule"]
    assert got == sched
    # 0.02 × 22 = 0.44 → 0 steps
    bad = {**minimal_spec(), "schedule": {"warmup": {"epochs": 0.02}}}
    err = assert_error(client.post("/jobs", json=bad), 422)
    assert ["schedule", "warmup", "epochs"] in locs(err)
    assert "22 steps per epoch" in str(err) and "0 steps" in str(err)


def test_step_decay_defaults_fit_the_default_epochs(client):
    # {"kind": "step"} used to fail on a step_epochs (30) the user never set
    spec = {"data": {"dataset": "digits"}, "schedule": {"decay": {"kind": "step"}}}
    r = client.post("/jobs", json=spec)
    assert r.status_code == 201, r.text
    plan = r.json()["plan"]
    # 20 epochs by default: every ceil(20 / 3) = 7 epochs, at 1/3 and 2/3 of training
    assert plan["schedule"]["decay_epochs"] == [7, 14] and plan["schedule"]["decays"] == 2
    # an explicit value is kept and still checked
    spec["schedule"]["decay"]["step_epochs"] = 20
    err = assert_error(client.post("/jobs", json=spec), 422)
    assert ["schedule", "decay", "step_epochs"] in locs(err)
