"""The search request model and its pure helpers (no Redis, no Optuna)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tricklab.search_spec import (
    SearchSpec,
    decode_value,
    grid_points,
    grid_size,
    label,
    probes,
    trial_spec,
)

BASE = {"data": {"dataset": "digits"}, "training": {"epochs": 3}}


def spec(**over):
    return SearchSpec.model_validate(
        {"base": BASE, "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}}, **over}
    )


def test_defaults_and_issue_example_parse():
    s = SearchSpec.model_validate(
        {
            "name": "digits lr/warm-up/smoothing",
            "base": BASE,
            "space": {
                "optimizer.lr": {"loguniform": [1e-3, 1.0]},
                "schedule.warmup.epochs": {"int": [0, 5]},
                "regularization.label_smoothing": {"uniform": [0.0, 0.2]},
                "regularization.mixup": {"choice": [None, {"alpha": 0.2}, {"alpha": 0.4}]},
            },
            "algorithm": "tpe",
            "trials": 40,
            "max_concurrent": 4,
            "seed": 0,
            "metric": "val_acc",
            "mode": "max",
            "confirm": {"top_k": 3, "seeds": 3},
        }
    )
    assert s.trials == 40 and s.confirm.top_k == 3
    assert spec().algorithm == "tpe" and spec().mode == "max"


@pytest.mark.parametrize(
    "dist",
    [
        {"loguniform": [0, 1]},
        {"loguniform": [1, 0.1]},
        {"uniform": [0.2, 0.2]},
        {"int": [5, 0]},
        {"choice": []},
        {"choice": [1, 1]},
        {"normal": [0, 1]},
        {"uniform": [0, 1], "int": [0, 1]},
    ],
)
def test_bad_distributions_are_rejected(dist):
    with pytest.raises(ValidationError):
        spec(space={"optimizer.lr": dist})


@pytest.mark.parametrize("path", ["", "optimizer.", ".lr", "task"])
def test_bad_paths_are_rejected(path):
    with pytest.raises(ValidationError):
        spec(space={path: {"uniform": [0, 1]}})


def test_grid_needs_finite_dimensions():
    with pytest.raises(ValidationError, match="grid"):
        spec(algorithm="grid")
    g = spec(
        algorithm="grid",
        space={
            "training.batch_size": {"int": [30, 32]},
            "regularization.mixup": {"choice": [None, {"alpha": 0.2}]},
        },
    )
    assert grid_points(g.space) == {
        "training.batch_size": [30, 31, 32],
        "regularization.mixup": ["null", '{"alpha":0.2}'],
    }
    assert grid_size(g.space) == 6


def test_choice_labels_round_trip_and_trial_spec_sets_paths():
    s = spec(
        space={
            "regularization.mixup": {"choice": [None, {"alpha": 0.4}]},
            "training.epochs": {"int": [1, 4]},
        }
    )
    d = s.space["regularization.mixup"]
    assert decode_value(d, label({"alpha": 0.4})) == {"alpha": 0.4}
    assert decode_value(d, "null") is None
    assert decode_value(s.space["training.epochs"], 3.0) == 3
    raw = trial_spec(
        BASE, {"regularization.mixup": {"alpha": 0.4}, "training.epochs": 2, "optimizer.lr": 0.3}
    )
    assert raw == {
        "data": {"dataset": "digits"},
        "training": {"epochs": 2},
        "regularization": {"mixup": {"alpha": 0.4}},
        "optimizer": {"lr": 0.3},
    }
    assert BASE == {"data": {"dataset": "digits"}, "training": {"epochs": 3}}  # not mutated


def test_probes_cover_each_end_and_every_choice():
    s = spec(
        space={
            "optimizer.lr": {"loguniform": [1e-3, 1.0]},
            "schedule.warmup.epochs": {"int": [2, 2]},
            "regularization.mixup": {"choice": [None, {"alpha": 0.2}]},
        }
    )
    assert probes(s.space) == [
        ("optimizer.lr", 1e-3),
        ("optimizer.lr", 1.0),
        ("schedule.warmup.epochs", 2),
        ("regularization.mixup", None),
        ("regularization.mixup", {"alpha": 0.2}),
    ]


def test_zero_warmup_means_none_so_a_space_can_start_at_zero():
    import numpy as np

    from tricks.schedules import lr_curve
    from tricks.spec import JobSpec

    def curve(schedule):
        s = JobSpec.model_validate({**BASE, "schedule": schedule})
        return lr_curve(lr0=0.1, schedule=s.schedule, steps_per_epoch=7, epochs=3)

    plain = curve({"decay": {"kind": "cosine"}})
    # by hand: cosine from 0.1 over 21 steps, no warm-up
    assert plain == pytest.approx([0.05 * (1 + np.cos(np.pi * t / 21)) for t in range(21)])
    for w in ({"epochs": 0}, {"steps": 0}):
        assert np.array_equal(curve({"warmup": w, "decay": {"kind": "cosine"}}), plain)
