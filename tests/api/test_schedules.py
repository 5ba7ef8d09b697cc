"""POST /schedules/preview against tricks.schedules and hand-computed values."""

from __future__ import annotations

import math

import pytest
from support import assert_error, locs

from tricks.schedules import lr_curve
from tricks.spec import ScheduleSpec

CASES = [
    {"warmup": {"epochs": 2, "start_lr": 0.0}, "decay": {"kind": "cosine", "min_lr": 0.0}},
    {"decay": {"kind": "multistep", "milestones": [3, 6], "gamma": 0.1}, "per": "epoch"},
    {"decay": {"kind": "linear", "min_lr": 0.01}},
    {"warmup": {"steps": 5}, "decay": {"kind": "exponential", "gamma": 0.9}},
]


@pytest.mark.parametrize("schedule", CASES)
def test_preview_equals_lr_curve(client, schedule):
    body = {"lr": 0.1, "epochs": 8, "steps_per_epoch": 7, "schedule": schedule}
    r = client.post("/schedules/preview", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    want = lr_curve(lr0=0.1, schedule=ScheduleSpec(**schedule), steps_per_epoch=7, epochs=8)
    assert got["total_steps"] == 56 == len(got["lr"])
    assert got["step"] == list(range(56))
    assert got["lr"] == pytest.approx(want.tolist(), rel=1e-12, abs=1e-15)


def test_preview_matches_hand_values_for_warmup_cosine(client):
    body = {
        "lr": 0.1,
        "epochs": 4,
        "steps_per_epoch": 5,
        "schedule": {"warmup": {"steps": 4}, "decay": {"min_lr": 0.0}},
    }
    lr = client.post("/schedules/preview", json=body).json()["lr"]
    assert lr[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    # decay starts at u = 0 with lr0; T = 20 - 4 = 16
    assert lr[4] == pytest.approx(0.1)
    assert lr[12] == pytest.approx(0.05 * (1 + math.cos(math.pi * 8 / 16)))


def test_preview_downsampling_keeps_first_last_min_max(client):
    body = {
        "lr": 0.1,
        "epochs": 100,
        "steps_per_epoch": 100,
        "max_points": 50,
        "schedule": {"warmup": {"epochs": 10}, "decay": {"kind": "cosine", "min_lr": 0.001}},
    }
    got = client.post("/schedules/preview", json=body).json()
    assert got["total_steps"] == 10_000 and len(got["step"]) <= 50
    full = lr_curve(
        lr0=0.1, schedule=ScheduleSpec(**body["schedule"]), steps_per_epoch=100, epochs=100
    )
    assert got["step"][0] == 0 and got["step"][-1] == 9999
    assert got["step"] == sorted(got["step"])
    assert int(full.argmax()) in got["step"] and int(full.argmin()) in got["step"]
    assert got["lr"] == pytest.approx(full[got["step"]].tolist())


@pytest.mark.parametrize(
    "body, loc",
    [
        (
            {"lr": 0.1, "epochs": 3, "steps_per_epoch": 5, "schedule": {"warmup": {"epochs": 3}}},
            ["schedule", "warmup", "epochs"],
        ),
        (
            {"lr": 0.1, "epochs": 3, "steps_per_epoch": 5, "schedule": {"warmup": {"steps": 15}}},
            ["schedule", "warmup", "steps"],
        ),
        (
            {"lr": 0.1, "epochs": 3, "steps_per_epoch": 5, "schedule": {"decay": {"min_lr": 0.5}}},
            ["schedule", "decay", "min_lr"],
        ),
        (
            {
                "lr": 0.1,
                "epochs": 3,
                "steps_per_epoch": 5,
                "schedule": {"decay": {"kind": "multistep", "milestones": [5]}},
            },
            ["schedule", "decay", "milestones"],
        ),
        ({"lr": -1, "epochs": 3, "steps_per_epoch": 5}, ["lr"]),
        ({"lr": 0.1, "epochs": 0, "steps_per_epoch": 5}, ["epochs"]),
        ({"lr": 0.1, "epochs": 3, "steps_per_epoch": 5, "max_points": 1}, ["max_points"]),
        (
            {
                "lr": 0.1,
                "epochs": 3,
                "steps_per_epoch": 5,
                "schedule": {"decay": {"kind": "zigzag"}},
            },
            ["schedule", "decay"],
        ),
        ({"lr": 0.1, "epochs": 3, "steps_per_epoch": 5, "extra": 1}, ["extra"]),
        ({"epochs": 3, "steps_per_epoch": 5}, ["lr"]),
    ],
)
def test_bad_preview_is_422_naming_the_field(client, body, loc):
    err = assert_error(client.post("/schedules/preview", json=body), 422, "validation_error")
    assert any(lc[: len(loc)] == loc for lc in locs(err)), err


def test_preview_longer_than_max_total_steps_is_422_at_epochs(client):
    # the default max_total_steps is 10M: 1000 x 100,000 is ten times that
    body = {"lr": 0.1, "epochs": 1000, "steps_per_epoch": 100_000}
    err = assert_error(client.post("/schedules/preview", json=body), 422, "quota_exceeded")
    assert err["details"][0]["loc"] == ["epochs"]
    assert "max_total_steps" in err["message"] and "at most 100 epochs" in err["message"]
