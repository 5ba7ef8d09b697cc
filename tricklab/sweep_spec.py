"""Sweeps and ablations: the request body of POST /sweeps and its expansion into job specs.

A sweep is a base spec plus one of
- `grid`: dotted spec paths → lists of values; every combination is a variant
  (the first combination is the baseline the others are compared with);
- `ablation`: a list of named changes applied cumulatively (Bag of Tricks,
  He et al. 2019, Table 6: baseline → +cosine → +label smoothing → +mixup; each
  row is compared with the row before), or `{"mode": "leave_one_out", "changes":
  [...]}`: the full recipe (base + every change) and the recipe without each one
  (each compared with the full recipe);
and `seeds` (a count n → training.seed 0..n−1, or an explicit list): every variant
runs once per seed.

Setting a path: `schedule.decay.kind: step` replaces the decay object with
`{"kind": "step"}` (that kind's defaults) unless the kind is unchanged; the same
holds for `optimizer.name` and `model.arch`. Within one change, tag paths are
applied before the others, so `{"schedule.decay.kind": "step",
"schedule.decay.step_epochs": 1}` gives a step decay with step_epochs 1.
A value null turns an optional section off (`regularization.mixup: null`).

No torch here: the API imports it. Validation of every variant happens in the
API (tricks.spec.JobSpec + api.planning), which names the variant and the field.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tricks.spec import SpecError

MAX_VARIANTS = 256
MAX_CHILDREN = 1024
MAX_SEEDS = 32  # seeds given as a count
# the discriminator of each tagged union, by the path of the object that holds it
TAGS = {("optimizer",): "name", ("model",): "arch", ("schedule", "decay"): "kind"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Change(_Strict):
    name: str = Field(min_length=1, max_length=100, description="Row label, e.g. '+cosine'.")
    set: dict[str, Any] = Field(
        min_length=1,
        description="Dotted spec paths → values, e.g. {'regularization.label_smoothing': 0.1}.",
    )


class LeaveOneOut(_Strict):
    mode: Literal["leave_one_out", "cumulative"] = "leave_one_out"
    changes: list[Change] = Field(min_length=1, max_length=MAX_VARIANTS - 1)


class SweepSpec(_Strict):
    name: str = Field("", max_length=200)
    base: dict[str, Any] = Field(
        description="A job spec (POST /jobs body) every variant starts from."
    )
    grid: dict[str, list[Any]] | None = Field(
        None, description="Dotted spec paths → lists of values; every combination runs."
    )
    ablation: list[Change] | LeaveOneOut | None = Field(
        None,
        description="Named changes applied cumulatively, or {mode: leave_one_out, changes: [...]}.",
    )
    seeds: int | list[int] = Field(
        1, description="n → training.seed 0..n−1, or an explicit list of seeds."
    )
    max_concurrent: int = Field(
        4, ge=1, le=64, description="At most this many child jobs queued or running at once."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SweepSpec:
        if (self.grid is None) == (self.ablation is None):
            raise SpecError(("grid",), "give exactly one of grid or ablation")
        if self.grid is not None:
            if not self.grid:
                raise SpecError(("grid",), "grid is empty: give at least one path with values")
            for path, values in self.grid.items():
                _check_path(("grid", path), path)
                if not values:
                    raise SpecError(("grid", path), f"grid['{path}'] has no values")
        changes = self.ablation if isinstance(self.ablation, list) else None
        if isinstance(self.ablation, LeaveOneOut):
            changes = self.ablation.changes
        for i, ch in enumerate(changes or []):
            for path in ch.set:
                _check_path(("ablation", i, "set", path), path)
        # Bound the count before seed_list() builds it: seeds=10**15 is a MemoryError otherwise.
        if isinstance(self.seeds, int) and not 1 <= self.seeds <= MAX_SEEDS:
            # str() of a huge int is slow, and refused past 4300 digits: describe it instead
            digits = int(abs(self.seeds).bit_length() * 0.30103) + 1
            shown = self.seeds if abs(self.seeds) < 10**12 else f"a ~{digits}-digit number"
            raise SpecError(("seeds",), f"seeds ({shown}) must be between 1 and {MAX_SEEDS}")
        if isinstance(self.seeds, list) and len(self.seeds) > MAX_CHILDREN:
            raise SpecError(
                ("seeds",), f"{len(self.seeds)} seeds, at most {MAX_CHILDREN} (one job each)"
            )
        seeds = self.seed_list()
        if isinstance(self.seeds, list):
            if not seeds or len(set(seeds)) != len(seeds) or any(not 0 <= s < 2**31 for s in seeds):
                raise SpecError(("seeds",), "seeds must be a non-empty list of distinct seeds ≥ 0")
        n_var = self.n_variants()
        if n_var > MAX_VARIANTS:
            raise SpecError(("grid",), f"{n_var} variants, at most {MAX_VARIANTS}")
        if n_var * len(seeds) > MAX_CHILDREN:
            raise SpecError(
                ("seeds",), f"{n_var} variants × {len(seeds)} seeds is above {MAX_CHILDREN} jobs"
            )
        return self

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def kind(self) -> str:
        if self.grid is not None:
            return "grid"
        if isinstance(self.ablation, LeaveOneOut) and self.ablation.mode == "leave_one_out":
            return "leave_one_out"
        return "ablation"

    def n_variants(self) -> int:
        if self.grid is not None:
            n = 1
            for v in self.grid.values():
                n *= len(v)
            return n
        changes = self.ablation.changes if isinstance(self.ablation, LeaveOneOut) else self.ablation
        return 1 + len(changes or [])


def _check_path(loc: tuple, path: str) -> None:
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise SpecError(loc, f"'{path}' is not a dotted spec path like 'schedule.decay.kind'")
    if parts[0] == "task":
        raise SpecError(loc, "a sweep cannot change the task; make one sweep per task")


# ------------------------------------------------------------------ applying paths


def _tag_of(parts: list[str]) -> bool:
    return TAGS.get(tuple(parts[:-1])) == parts[-1]


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in a spec dict in place; a new union tag replaces its object."""
    parts = path.split(".")
    node = spec
    for key in parts[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    last = parts[-1]
    if _tag_of(parts):
        if node.get(last, _default_tag(parts)) != value:
            node.clear()
        node[last] = value
        return
    node[last] = copy.deepcopy(value)


def _default_tag(parts: list[str]) -> str:
    """What an absent tag means (JobSpec's defaults): sgd, mlp, cosine."""
    return {"name": "sgd", "arch": "mlp", "kind": "cosine"}[parts[-1]]


def apply_change(spec: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """A copy of spec with every path of change set; tag paths first."""
    out = copy.deepcopy(spec)
    for path in sorted(change, key=lambda p: (not _tag_of(p.split(".")), p.count("."))):
        set_path(out, path, change[path])
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """base updated by over, recursively; an object whose union tag changes is replaced."""
    change: dict[str, Any] = {}

    def walk(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            path = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict) and v:
                walk(path, v)
            else:
                change[path] = v

    walk("", over)
    return apply_change(base, change)


# ------------------------------------------------------------------ expansion


def _fmt(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"))


@dataclass
class Variant:
    index: int
    name: str  # the row label
    change: dict[str, Any]  # what this row sets relative to the base
    spec: dict[str, Any]  # the spec before the seed is set
    compare_to: int | None = None  # the row this one is compared with
    seeds: list[int] = field(default_factory=list)


def expand(sweep: SweepSpec) -> list[Variant]:
    """The variants of a sweep, in row order (specs not validated yet)."""
    base = copy.deepcopy(sweep.base)
    seeds = sweep.seed_list()
    out: list[Variant] = []
    if sweep.grid is not None:
        paths = list(sweep.grid)
        for i, combo in enumerate(itertools.product(*(sweep.grid[p] for p in paths))):
            change = dict(zip(paths, combo, strict=True))
            name = ", ".join(f"{p}={_fmt(v)}" for p, v in change.items())
            out.append(Variant(i, name, change, apply_change(base, change), None if i == 0 else 0))
    elif sweep.kind() == "leave_one_out":
        assert isinstance(sweep.ablation, LeaveOneOut)
        changes = sweep.ablation.changes
        full_change: dict[str, Any] = {}
        full = base
        for ch in changes:
            full = apply_change(full, ch.set)
            full_change.update(ch.set)
        out.append(Variant(0, "full recipe", full_change, full, None))
        for i, left_out in enumerate(changes, start=1):
            spec = base
            kept: dict[str, Any] = {}
            for ch in changes:
                if ch is not left_out:
                    spec = apply_change(spec, ch.set)
                    kept.update(ch.set)
            out.append(Variant(i, f"− {left_out.name}", kept, spec, 0))
    else:
        steps = (
            sweep.ablation.changes if isinstance(sweep.ablation, LeaveOneOut) else sweep.ablation
        )
        spec = base
        out.append(Variant(0, "baseline", {}, spec, None))
        for i, ch in enumerate(steps or [], start=1):
            spec = apply_change(spec, ch.set)
            out.append(Variant(i, ch.name, dict(ch.set), spec, i - 1))
    for v in out:
        v.seeds = list(seeds)
    return out


def child_spec(sweep: SweepSpec, variant: Variant, seed: int) -> dict[str, Any]:
    """The job spec of one (variant, seed): training.seed set, a readable name."""
    spec = apply_change(variant.spec, {"training.seed": seed})
    label = sweep.name or spec.get("name") or "sweep"
    spec["name"] = f"{label} / {variant.name} / seed {seed}"[:200]
    return spec
