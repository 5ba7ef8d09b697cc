"""Per-tenant limits, checked before anything is stored or queued; each refusal names its limit.

The limits come from settings, overridden per API key (api/auth.Limits). The checks are
read-then-write, so two requests racing at the very edge of a limit may both pass: the
limits protect the service from runaway use, they are not billing-exact.
"""

from __future__ import annotations

from typing import Any

from api.auth import Limits
from api.errors import ApiError
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


def check_dataset_storage(repo: DatasetRepo, tenant: str, size: int, limits: Limits) -> None:
    """413 when this upload would take the tenant's stored datasets past max_dataset_bytes_total."""
    used = sum(int(d.get("bytes") or 0) for d in repo.list(tenant))
    if used + size > limits.max_dataset_bytes_total:
        raise quota_error(
            413,
            "max_dataset_bytes_total",
            f"your datasets use {used} bytes; this {size} byte upload would pass the "
            f"{limits.max_dataset_bytes_total} byte limit (max_dataset_bytes_total); "
            "delete a dataset first",
            used=used,
            max_dataset_bytes_total=limits.max_dataset_bytes_total,
        )
