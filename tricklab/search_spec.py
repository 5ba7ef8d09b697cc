"""POST /searches: what a user sends, and how a sampled point becomes a job spec.

A search samples points of a *space* (spec path → distribution) with an Optuna sampler
(random, TPE, grid), runs each point as an ordinary job (a *trial*), and re-runs the best
few with more seeds (the *confirm* stage). Pure: no Redis, no Optuna import here (the
driver, api/search_driver.py, turns distributions into Optuna's).

Distributions, one key each:
    {"loguniform": [lo, hi]}   float, sampled uniformly in log space (0 < lo < hi)
    {"uniform": [lo, hi]}      float (lo < hi)
    {"int": [lo, hi]}          integer, both ends included (lo <= hi)
    {"choice": [v, ...]}       any JSON values (null, numbers, strings, objects)
"""

from __future__ import annotations

import copy
import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tricklab.sweep_spec import set_path

MAX_TRIALS = 500
MAX_DIMS = 16
MAX_CHOICES = 64
# A search stops with an error after this many sampled points in a row were invalid specs.
MAX_REJECTED_IN_A_ROW = 50

Metric = Literal["val_acc", "val_loss", "val_ece", "best_val_acc"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LogUniform(_Strict):
    loguniform: tuple[float, float]

    @field_validator("loguniform")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
            raise ValueError(f"needs 0 < lo < hi, finite; got [{lo}, {hi}]")
        return v


class Uniform(_Strict):
    uniform: tuple[float, float]

    @field_validator("uniform")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"needs lo < hi, finite; got [{lo}, {hi}]")
        return v


class IntRange(_Strict):
    int_: tuple[int, int] = Field(alias="int")
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("int_")
    @classmethod
    def _range(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if lo > hi:
            raise ValueError(f"needs lo <= hi; got [{lo}, {hi}]")
        if hi - lo > 10**9:
            raise ValueError("the range is wider than 1e9")
        return v


class Choice(_Strict):
    choice: list[Any] = Field(min_length=1, max_length=MAX_CHOICES)

    @field_validator("choice")
    @classmethod
    def _distinct(cls, v: list[Any]) -> list[Any]:
        labels = [label(x) for x in v]
        if len(set(labels)) != len(labels):
            raise ValueError("choices must be distinct")
        return v


Distribution = LogUniform | Uniform | IntRange | Choice


class AshaSpec(_Strict):
    """Asynchronous successive halving (Li et al. 2020) with rungs in epochs: at each rung
    a trial goes on only if its judged metric is in the top 1/reduction_factor of the
    values recorded at that rung so far."""

    kind: Literal["asha"] = "asha"
    min_epochs: int = Field(1, ge=1, le=10_000, description="The first rung, in epochs.")
    reduction_factor: int = Field(
        3, ge=2, le=10, description="η: rung k is at min_epochs·η^k; 1/η of the trials go on."
    )
    judge: Literal["cooldown", "raw"] = Field(
        "cooldown",
        description="`cooldown`: judge a trial at a rung by a short fork from its rung "
        "checkpoint with the lr decayed linearly to zero (as warm-up-stable-decay training "
        "evaluates checkpoints); `raw`: by its metric at the rung, mid-schedule (plain ASHA).",
    )
    cooldown_fraction: float = Field(
        0.2,
        gt=0.0,
        le=1.0,
        description="Length of the cool-down fork as a share of the rung (at least one epoch).",
    )


def rungs(asha: AshaSpec, epochs: int) -> list[int]:
    """The rung epochs below the full run: min_epochs·η^k < epochs."""
    out, r = [], asha.min_epochs
    while r < epochs:
        out.append(r)
        r *= asha.reduction_factor
    return out


def cooldown_epochs(asha: AshaSpec, rung: int) -> int:
    return max(1, round(asha.cooldown_fraction * rung))


class ConfirmSpec(_Strict):
    top_k: int = Field(3, ge=1, le=10, description="How many of the best configurations re-run.")
    seeds: int = Field(3, ge=2, le=10, description="Seeds per configuration (Welch needs >= 2).")


class SearchSpec(_Strict):
    name: str = Field("", max_length=200)
    base: dict[str, Any] = Field(description="A job spec; each trial sets the space's paths in it.")
    space: dict[str, Distribution] = Field(
        min_length=1,
        max_length=MAX_DIMS,
        description="Spec path → {loguniform|uniform|int: [lo, hi]} or {choice: [...]}.",
    )
    algorithm: Literal["tpe", "random", "grid"] = "tpe"
    trials: int = Field(20, ge=1, le=MAX_TRIALS, description="Trials to run (grid: at most).")
    max_concurrent: int = Field(2, ge=1, le=64)
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the sampler.")
    metric: Metric = "val_acc"
    mode: Literal["max", "min"] = "max"
    early_stopping: Annotated[
        AshaSpec | None, Field(description="ASHA with rungs in epochs; none: full runs only.")
    ] = None
    confirm: ConfirmSpec | None = None

    @field_validator("space")
    @classmethod
    def _paths(cls, space: dict[str, Any]) -> dict[str, Any]:
        for path in space:
            parts = path.split(".")
            if not path or any(not p for p in parts):
                raise ValueError(f"'{path}' is not a dotted spec path like 'optimizer.lr'")
            if parts[0] == "task":
                raise ValueError("a search cannot change the task")
        return space

    @model_validator(mode="after")
    def _grid(self) -> SearchSpec:
        if self.algorithm == "grid":
            for path, d in self.space.items():
                if isinstance(d, LogUniform | Uniform):
                    raise ValueError(
                        f"space.{path}: the grid algorithm needs 'choice' or 'int' dimensions"
                    )
        return self


def base_epochs(base: dict[str, Any]) -> int:
    """training.epochs of the base spec (its default when absent)."""
    from tricks.spec.regularization import TrainingSpec

    given = (base.get("training") or {}).get("epochs")
    return (
        int(given) if isinstance(given, int) else int(TrainingSpec.model_fields["epochs"].default)
    )


def label(value: Any) -> str:
    """A choice as Optuna sees it (categorical choices must be primitives): its JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def grid_points(space: dict[str, Any]) -> dict[str, list[Any]]:
    """For the grid sampler: every dimension's values, as Optuna-side values."""
    out: dict[str, list[Any]] = {}
    for path, d in space.items():
        if isinstance(d, IntRange):
            lo, hi = d.int_
            out[path] = list(range(lo, hi + 1))
        elif isinstance(d, Choice):
            out[path] = [label(v) for v in d.choice]
    return out


def grid_size(space: dict[str, Any]) -> int:
    return math.prod(len(v) for v in grid_points(space).values())


def decode_value(d: Any, raw: Any) -> Any:
    """The spec value for Optuna's suggestion `raw` of distribution d."""
    if isinstance(d, Choice):
        return next(v for v in d.choice if label(v) == raw)
    if isinstance(d, IntRange):
        return int(raw)
    return float(raw)


def trial_spec(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The base spec with each path set to its sampled value."""
    spec = copy.deepcopy(base)
    for path, value in params.items():
        set_path(spec, path, value)
    return spec


def probes(space: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path, value) pairs to validate at creation: each dimension's ends (every choice),
    one at a time with the others at the base. A point that fails here would fail for
    every trial that draws it, so it is a 422 up front; invalid combinations are
    rejected and counted when sampled."""
    out: list[tuple[str, Any]] = []
    for path, d in space.items():
        if isinstance(d, Choice):
            out += [(path, v) for v in d.choice]
        elif isinstance(d, IntRange):
            out += [(path, v) for v in dict.fromkeys(d.int_)]
        elif isinstance(d, LogUniform):
            out += [(path, v) for v in d.loguniform]
        else:
            out += [(path, v) for v in d.uniform]
    return out


def confirm_seeds(base_seed: int, n: int) -> list[int]:
    """The seeds of the confirm stage: the trial's own seed first, then the next ones."""
    return [base_seed + i for i in range(n)]


def distinct(values: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for v in values:
        k = label(v)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out
