"""What the API decides before a job is queued: its dataset, its step plan and its queue."""

from __future__ import annotations

from typing import Any

from api.uploads import DatasetRepo
from tricklab.server.reuse import spec_hash
from tricklab.server.store import Store
from tricklab.server.workers import cached_coverage
from tricks.catalog import BUILTINS, builtin_meta
from tricks.params import count_parameters
from tricks.schedule_steps import check_realised, realised
from tricks.spec import (
    DatasetMeta,
    JobSpec,
    SpecError,
    check_against_dataset,
    dataset_meta_after_split,
    steps_per_epoch,
)


def resolve_dataset(spec: JobSpec, repo: DatasetRepo, tenant: str) -> DatasetMeta:
    """The dataset's meta after the validation split; SpecError at data.dataset when unknown."""
    name = spec.data.dataset
    meta = builtin_meta(name, spec.data.val_fraction)
    if meta is not None:
        return meta
    stored = repo.get(name, tenant)
    if stored is None:
        raise SpecError(
            ("data", "dataset"),
            f"dataset '{name}' does not exist: use a built-in ({', '.join(BUILTINS)}) "
            f"or the id of an upload (GET /datasets)",
        )
    fields = {k: stored[k] for k in DatasetMeta.model_fields if k in stored}
    return dataset_meta_after_split(DatasetMeta(**fields), spec.data.val_fraction)


def check_job(spec: JobSpec, meta: DatasetMeta) -> None:
    """check_against_dataset plus what the classes and splits allow; SpecError with its loc."""
    if meta.num_classes < 2:
        raise SpecError(
            ("data", "dataset"),
            f"dataset '{meta.id}' has {meta.num_classes} class: classification needs at least 2",
        )
    if meta.n_train < 1 or meta.n_val < 1:
        raise SpecError(
            ("data", "val_fraction"),
            f"dataset '{meta.id}' splits into {meta.n_train} training and {meta.n_val} validation "
            f"samples; both need at least one",
        )
    check_against_dataset(spec, meta)
    if spec.task == "train":  # a range test has no schedule: the lr sweeps lr_range
        spe, epochs = steps_per_epoch(meta.n_train, spec.training.batch_size), spec.training.epochs
        check_realised(spec.schedule, steps_per_epoch=spe, epochs=epochs)


def make_plan(spec: JobSpec, meta: DatasetMeta) -> dict[str, Any]:
    """Steps, splits, the model's trainable parameters (counted without torch) and the
    schedule's realised lengths in steps (tricks.schedule_steps.realised)."""
    spe = steps_per_epoch(meta.n_train, spec.training.batch_size)
    epochs = spec.training.epochs
    total = spe * epochs
    if spec.task == "lr_range_test" and spec.lr_range is not None:
        total = spec.lr_range.steps
    return {
        "steps_per_epoch": spe,
        "total_steps": total,
        "epochs": epochs,
        "n_train": meta.n_train,
        "n_val": meta.n_val,
        "parameters": count_parameters(spec.model, meta.input_shape, meta.num_classes),
        "schedule": None
        if spec.task == "lr_range_test"
        else realised(spec.schedule, steps_per_epoch=spe, epochs=epochs),
    }


def plan_job(spec: JobSpec, repo: DatasetRepo, tenant: str) -> tuple[DatasetMeta, dict[str, int]]:
    """The dataset meta and the plan of a job; SpecError (with its loc) when it does not fit.

    One path for POST /jobs, forks and every sweep variant."""
    meta = resolve_dataset(spec, repo, tenant)
    check_job(spec, meta)
    return meta, make_plan(spec, meta)


def cached_worker_queues(store: Store, ttl_s: float) -> set[str]:
    """Queues that live workers said they consume: their heartbeats change in seconds,
    not per request, so one reading (shared with every job's pending_reason) serves."""
    return {q for q, n in cached_coverage(store.workers, ttl_s).per_queue.items() if n}


def choose_queue(spec: JobSpec, store: Store, ttl_s: float) -> str:
    """cuda → gpu, cpu → cpu, auto → gpu when a live worker consumes the gpu queue."""
    device = spec.training.device
    if device == "cuda":
        return "gpu"
    if device == "cpu":
        return "cpu"
    return "gpu" if "gpu" in cached_worker_queues(store, ttl_s) else "cpu"


def record_extra(
    spec: JobSpec, meta: DatasetMeta, plan: dict[str, int], **more: Any
) -> dict[str, Any]:
    """The fields every job record carries besides its spec: the plan, the dataset's meta
    and the canonical spec hash (POST /jobs?reuse=true looks it up); `more` adds to them."""
    return {
        "plan": plan,
        "dataset_meta": meta.model_dump(mode="json"),
        "spec_hash": spec_hash(spec.model_dump(mode="json")),
        **more,
    }
