"""The driver rebuilds an Optuna study from the search record at every step: what it asks
must not depend on anything but the record (an API restart loses nothing)."""

from __future__ import annotations

from api.search_optuna import importance, study_of
from tricklab.search_spec import SearchSpec, decode_value


def make(**over) -> SearchSpec:
    return SearchSpec.model_validate(
        {
            "base": {"data": {"dataset": "digits"}},
            "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
            **over,
        }
    )


def record(spec: SearchSpec, n: int, f=lambda p: -abs(p["optimizer.lr"] - 0.1)) -> list[dict]:
    """n trials drawn one step at a time, each told at once, as the driver would."""
    trials: list[dict] = []
    for i in range(n):
        study = study_of(spec, trials)
        t = study.ask(fixed_distributions={k: v for k, v in study_of_dists(spec).items()})
        params = {p: decode_value(spec.space[p], t.params[p]) for p in spec.space}
        trials.append(
            {
                "number": i,
                "params": params,
                "optuna": {
                    "params": dict(t.params),
                    "system_attrs": dict(study.trials[-1].system_attrs),
                },
                "told": True,
                "value": f(params),
            }
        )
    return trials


def study_of_dists(spec):
    from api.search_optuna import distributions

    return distributions(spec)


def test_same_record_same_next_point():
    spec = make(algorithm="tpe", trials=12, seed=7)
    trials = record(spec, 8)
    a = study_of(spec, trials).ask(fixed_distributions=study_of_dists(spec)).params
    b = study_of(spec, trials).ask(fixed_distributions=study_of_dists(spec)).params
    assert a == b
    # a different search seed draws differently
    other = record(make(algorithm="tpe", trials=12, seed=8), 8)
    assert [t["params"] for t in other] != [t["params"] for t in trials]


def test_random_points_differ_step_to_step_and_stay_in_range():
    spec = make(algorithm="random", trials=20)
    trials = record(spec, 20)
    lrs = [t["params"]["optimizer.lr"] for t in trials]
    assert len(set(lrs)) == 20 and all(1e-3 <= x <= 1.0 for x in lrs)


def test_tpe_concentrates_near_the_optimum():
    # score peaks at lr = 0.1: after the random start-up, TPE's draws are closer to it
    spec = make(algorithm="tpe", trials=40, seed=0)
    trials = record(spec, 40)
    import math

    dist = [abs(math.log10(t["params"]["optimizer.lr"]) + 1) for t in trials]
    early, late = sum(dist[:10]) / 10, sum(dist[-10:]) / 10
    assert late < early * 0.6, (early, late)


def test_grid_never_repeats_a_running_point():
    spec = make(
        algorithm="grid",
        space={
            "optimizer.lr": {"choice": [0.01, 0.1, 1.0]},
            "training.batch_size": {"int": [32, 33]},
        },
    )
    trials = record(spec, 6)
    for t in trials:
        t["told"] = False  # all still running: the grid must not hand any out again
    points = {(t["params"]["optimizer.lr"], t["params"]["training.batch_size"]) for t in trials}
    assert len(points) == 6


def test_importance_names_the_parameter_that_matters():
    spec = make(
        algorithm="random",
        trials=30,
        space={
            "optimizer.lr": {"loguniform": [1e-3, 1.0]},
            "regularization.label_smoothing": {"uniform": [0, 0.2]},
        },
    )
    trials = record(spec, 30)
    imp = importance(spec, trials)
    assert imp is not None and set(imp) == set(spec.space)
    assert imp["optimizer.lr"] > 0.8, imp
