"""Optuna for searches: distributions, samplers, and a study rebuilt from a search's record.

The driver keeps no sampler state: each step rebuilds an in-memory study from the
record's trials (params, distributions, system attrs, values, ASHA's rung values), so
an API restart loses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from tricklab.search_spec import Choice, IntRange, LogUniform, SearchSpec, grid_points, label

log = logging.getLogger(__name__)


def _optuna() -> Any:
    import optuna  # lazily: ~0.5 s to import, and only the driver needs it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(spec: SearchSpec) -> dict[str, Any]:
    """Optuna's distribution for each path (choices by their JSON label)."""
    d = _optuna().distributions
    out: dict[str, Any] = {}
    for path, dist in spec.space.items():
        if isinstance(dist, Choice):
            out[path] = d.CategoricalDistribution([label(v) for v in dist.choice])
        elif isinstance(dist, IntRange):
            out[path] = d.IntDistribution(*dist.int_)
        elif isinstance(dist, LogUniform):
            out[path] = d.FloatDistribution(*dist.loguniform, log=True)
        else:
            out[path] = d.FloatDistribution(*dist.uniform)
    return out


def sampler(spec: SearchSpec, n_seen: int) -> Any:
    """A fresh sampler per step. Seeded by the search seed and the number of points drawn
    so far, so each ask differs and a rerun of the same history draws the same point."""
    s = _optuna().samplers
    seed = (spec.seed * 1_000_003 + n_seen) % 2**32
    if spec.algorithm == "grid":
        return s.GridSampler(grid_points(spec.space), seed=spec.seed)
    if spec.algorithm == "random":
        return s.RandomSampler(seed=seed)
    # constant_liar: running trials count as bad guesses, so parallel asks spread out
    startup = min(10, max(2, spec.trials // 3))
    return s.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True, multivariate=True)


def study_of(spec: SearchSpec, trials: list[dict[str, Any]], with_sampler: bool = True) -> Any:
    """An in-memory study holding every recorded trial."""
    optuna = _optuna()
    TrialState = optuna.trial.TrialState
    dists = distributions(spec)
    study = optuna.create_study(
        direction="maximize" if spec.mode == "max" else "minimize",
        sampler=sampler(spec, len(trials)) if with_sampler else None,
    )
    for t in trials:
        o = t["optuna"]
        # ASHA's judged values at each rung epoch: what TPE ranks a stopped trial by
        inter = {int(k): v for k, v in (t.get("rung_values") or {}).items() if v is not None}
        if t.get("rejected"):
            state, value = TrialState.FAIL, None
        elif t.get("stopped"):
            state, value = (TrialState.PRUNED if inter else TrialState.FAIL), None
        elif not t.get("told"):
            state, value = TrialState.RUNNING, None
        elif t.get("value") is None:
            state, value = TrialState.FAIL, None
        else:
            state, value = TrialState.COMPLETE, t["value"]
        study.add_trial(
            optuna.trial.create_trial(
                params=o["params"],
                distributions={k: dists[k] for k in o["params"]},
                system_attrs=o.get("system_attrs") or {},
                intermediate_values=inter if state != TrialState.FAIL else None,
                state=state,
                value=value,
            )
        )
    return study


def importance(spec: SearchSpec, trials: list[dict[str, Any]]) -> dict[str, float] | None:
    """Optuna's default parameter importance (fANOVA) over the finished trials."""
    done = [t for t in trials if t.get("told") and t.get("value") is not None]
    if len(done) < 3 or len(spec.space) < 1:
        return None
    try:
        study = study_of(spec, done, with_sampler=False)
        imp = _optuna().importance.get_param_importances(study)
    except (ValueError, RuntimeError) as e:  # e.g. a dimension never varied
        log.info("importance not available: %s", e)
        return None
    return {k: round(float(v), 6) for k, v in imp.items()}
