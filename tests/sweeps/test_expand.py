"""Grid and ablation expansion: dotted paths, union tags, seeds, cumulative order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tricklab.sweep_spec import SweepSpec, apply_change, child_spec, expand
from tricks.spec import JobSpec

BASE = {
    "data": {"dataset": "digits"},
    "schedule": {"decay": {"kind": "step", "step_epochs": 1, "gamma": 0.5}},
    "training": {"epochs": 2},
}


def test_grid_is_the_product_and_the_first_is_the_baseline():
    s = SweepSpec(
        base=BASE,
        grid={
            "schedule.decay.kind": ["step", "cosine"],
            "regularization.mixup": [None, {"alpha": 0.2}],
        },
        seeds=3,
    )
    vs = expand(s)
    assert len(vs) == 4
    assert [v.compare_to for v in vs] == [None, 0, 0, 0]
    # same kind: the decay keeps its fields; a new kind replaces the object
    assert vs[0].spec["schedule"]["decay"] == {"kind": "step", "step_epochs": 1, "gamma": 0.5}
    assert vs[2].spec["schedule"]["decay"] == {"kind": "cosine"}
    assert vs[1].spec["regularization"]["mixup"] == {"alpha": 0.2}
    assert vs[0].spec["regularization"]["mixup"] is None
    specs = [JobSpec.model_validate(child_spec(s, v, seed)) for v in vs for seed in v.seeds]
    assert sorted({sp.training.seed for sp in specs}) == [0, 1, 2]
    assert BASE["schedule"]["decay"]["kind"] == "step"  # the base is not mutated


def test_cumulative_ablation_applies_changes_in_order():
    s = SweepSpec(
        base={"data": {"dataset": "digits"}, "schedule": {"decay": {"kind": "constant"}}},
        ablation=[
            {"name": "+warm-up", "set": {"schedule.warmup": {"epochs": 1}}},
            {"name": "+cosine", "set": {"schedule.decay.kind": "cosine"}},
            {"name": "+label smoothing", "set": {"regularization.label_smoothing": 0.1}},
            {"name": "+mixup", "set": {"regularization.mixup": {"alpha": 0.2}}},
        ],
        seeds=[7, 11],
    )
    vs = expand(s)
    assert [v.name for v in vs] == ["baseline", "+warm-up", "+cosine", "+label smoothing", "+mixup"]
    assert [v.compare_to for v in vs] == [None, 0, 1, 2, 3]
    last = JobSpec.model_validate(child_spec(s, vs[-1], 11))
    assert last.schedule.warmup.epochs == 1 and last.schedule.decay.kind == "cosine"
    assert last.regularization.label_smoothing == 0.1 and last.regularization.mixup.alpha == 0.2
    assert last.training.seed == 11
    third = JobSpec.model_validate(child_spec(s, vs[2], 7))
    assert third.regularization.label_smoothing == 0.0 and third.schedule.decay.kind == "cosine"


def test_leave_one_out():
    s = SweepSpec(
        base={"data": {"dataset": "digits"}},
        ablation={
            "mode": "leave_one_out",
            "changes": [
                {"name": "label smoothing", "set": {"regularization.label_smoothing": 0.1}},
                {"name": "mixup", "set": {"regularization.mixup": {"alpha": 0.2}}},
            ],
        },
    )
    vs = expand(s)
    assert [v.name for v in vs] == ["full recipe", "− label smoothing", "− mixup"]
    assert [v.compare_to for v in vs] == [None, 0, 0]
    assert vs[1].spec["regularization"] == {"mixup": {"alpha": 0.2}}
    assert vs[2].spec["regularization"] == {"label_smoothing": 0.1}


def test_tag_paths_apply_before_their_fields():
    out = apply_change(
        {"schedule": {"decay": {"kind": "cosine", "min_lr": 0.01}}},
        {"schedule.decay.step_epochs": 3, "schedule.decay.kind": "step"},
    )
    assert out["schedule"]["decay"] == {"kind": "step", "step_epochs": 3}


@pytest.mark.parametrize(
    "body",
    [
        {"base": BASE},  # neither grid nor ablation
        {"base": BASE, "grid": {"training.epochs": []}},
        {"base": BASE, "grid": {"task": ["lr_range_test"]}},
        {"base": BASE, "grid": {"training.epochs": [2]}, "seeds": 0},
        {"base": BASE, "grid": {"training.epochs": [2]}, "seeds": [1, 1]},
    ],
)
def test_bad_sweeps_are_rejected(body):
    with pytest.raises(ValidationError):
        SweepSpec.model_validate(body)


def test_ids_drawn_together_sort_in_the_order_drawn():
    """Sweep children get their ids at once; the jobs list (ids, newest first) must show
    them in a stable order: the order they were drawn, reversed."""
    from tricklab.server.records import new_id, new_ids

    for _ in range(200):
        ids = new_ids(50)
        assert sorted(ids) == ids and len(set(ids)) == 50
        assert all(len(i) == len(new_id()) and i.startswith("j") for i in ids)
