"""Per-tenant limits, checked before anything is stored or queued; each refusal names its limit.

The limits come from settings, overridden per API key (api/auth.Limits). The checks here
are read-then-write, so two requests racing at the very edge of a limit may both pass: the
limits protect the service from runaway use, they are not billing-exact. Two exceptions
are atomic: max_active_jobs (Store.create_job's script) and the storage quota
(max_dataset_bytes_total), which tus uploads (api/tus_quota.py) and datasets being written
(reserve_dataset_storage) reserve in one script per check, under one per-tenant lock
(api/quota_lock.py).
"""

from __future__ import annotations

from typing import Any

from api.auth import Limits
from api.errors import ApiError
from api.quota_lock import quota_lock
from api.tus import Uploads
from api.tus_quota import uploads_held
from api.uploads import DatasetRepo


def quota_error(
    status: int, limit: str, message: str, code: str = "quota_exceeded", **details: Any
) -> ApiError:
    return ApiError(status, code, message, {"limit": limit, **details})


def active_jobs_error(active: int, max_active: int) -> ApiError:
    """429 for a tenant at max_active_jobs (Store.create_job checks it atomically)."""
    return quota_error(
        429,
        "max_active_jobs",
        f"you have {active} queued or running jobs, the limit (max_active_jobs) is "
        f"{max_active}; wait for one to finish or cancel one",
        max_active_jobs=max_active,
        active=active,
    )


def check_train_samples(epochs: int, n_train: int, limits: Limits) -> None:
    """422 at training.epochs when epochs x training samples is above max_train_samples."""
    samples = epochs * n_train
    if samples > limits.max_train_samples:
        most = max(1, limits.max_train_samples // max(1, n_train))
        msg = (
            f"{epochs} epochs x {n_train} training samples = {samples} samples, above the "
            f"max_train_samples limit of {limits.max_train_samples}; use at most {most} epochs"
        )
        raise ApiError(
            422,
            "quota_exceeded",
            msg,
            [
                {
                    "loc": ["training", "epochs"],
                    "msg": msg,
                    "limit": "max_train_samples",
                    "max_train_samples": limits.max_train_samples,
                }
            ],
        )


def _limit_422(loc: list[str], limit: str, msg: str, **details: Any) -> ApiError:
    """The max_train_samples shape: one field error that names the limit and its value."""
    return ApiError(
        422, "quota_exceeded", msg, [{"loc": loc, "msg": msg, "limit": limit, **details}]
    )


def check_plan(plan: dict[str, int], limits: Limits, task: str = "train") -> None:
    """422 when the planned job is above max_total_steps (at training.epochs) or its model
    above max_parameters (at model). plan is api.planning.make_plan's."""
    spe, epochs = plan["steps_per_epoch"], plan["epochs"]
    total = spe * epochs  # a range test's own steps are bounded by its spec
    if task == "train" and total > limits.max_total_steps:
        most = max(1, limits.max_total_steps // max(1, spe))
        raise _limit_422(
            ["training", "epochs"],
            "max_total_steps",
            f"{epochs} epochs x {spe} steps per epoch = {total} steps, above the "
            f"max_total_steps limit of {limits.max_total_steps}; use at most {most} epochs "
            "or a larger batch_size",
            max_total_steps=limits.max_total_steps,
            total_steps=total,
        )
    params = plan.get("parameters")
    if params is not None and params > limits.max_parameters:
        raise _limit_422(
            ["model"],
            "max_parameters",
            f"the model has {params:,} trainable parameters, above the max_parameters "
            f"limit of {limits.max_parameters:,}; use a smaller model (fewer or narrower "
            "layers)",
            max_parameters=limits.max_parameters,
            parameters=params,
        )


def check_preview_steps(epochs: int, steps_per_epoch: int, limits: Limits) -> None:
    """422 at epochs when a preview is longer than a job may be (max_total_steps)."""
    total = epochs * steps_per_epoch
    if total > limits.max_total_steps:
        most = max(1, limits.max_total_steps // max(1, steps_per_epoch))
        raise _limit_422(
            ["epochs"],
            "max_total_steps",
            f"{epochs} epochs x {steps_per_epoch} steps per epoch = {total} steps, above the "
            f"max_total_steps limit of {limits.max_total_steps}; use at most {most} epochs",
            max_total_steps=limits.max_total_steps,
            total_steps=total,
        )


def check_upload_size(size: int, limits: Limits) -> None:
    """413 when one uploaded file is above max_upload_bytes."""
    if size > limits.max_upload_bytes:
        raise quota_error(
            413,
            "max_upload_bytes",
            f"the upload is larger than the {limits.max_upload_bytes} byte limit "
            "(max_upload_bytes)",
            code="payload_too_large",
            max_upload_bytes=limits.max_upload_bytes,
        )


def reserve_dataset_storage(
    repo: DatasetRepo,
    uploads: Uploads,
    tenant: str,
    ds_id: str,
    size: int,
    limits: Limits,
    upload_id: str = "",
) -> None:
    """Hold `size` bytes of max_dataset_bytes_total for dataset `ds_id` while it is written, or
    413 when the tenant's stored datasets, those being written, its tus uploads (but
    `upload_id`, the one this dataset is made from) and this one would pass it. `size` is
    what the new dataset will take on disk (its .npy files), known from headers and row
    counts before any array data is written. The check and the hold are one script
    (DatasetRepo.reserve), under the tenant's reservation lock that tus reservations take
    too (api/quota_lock.py): two requests at once cannot both take the same free bytes."""
    most = limits.max_dataset_bytes_total
    with quota_lock(repo.r, repo.keys, tenant, _busy):
        held = uploads_held(uploads, tenant, upload_id)
        ok, used, pending = repo.reserve(tenant, ds_id, size, most - held)
    if not ok:
        also = [f"{pending} more are being written"] if pending else []
        also += [f"your unfinished uploads reserve {held}"] if held else []
        raise quota_error(
            413,
            "max_dataset_bytes_total",
            f"your datasets store {used} bytes{'; ' if also else ''}{' and '.join(also)}; "
            f"this dataset would store {size} more, past the {most} byte limit "
            "(max_dataset_bytes_total); delete a dataset or an upload first",
            used=used,
            pending=pending,
            reserved=held,
            stored_bytes=size,
            max_dataset_bytes_total=most,
        )


def _busy(message: str) -> ApiError:
    return ApiError(503, "quota_busy", message, {"retry_after_s": 1}, {"Retry-After": "1"})
