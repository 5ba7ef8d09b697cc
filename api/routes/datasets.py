"""Datasets: the built-ins and the tenant's uploads (.npz with x, y[, x_val, y_val]; .csv)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from api import quotas
from api.auth import PrincipalDep
from api.deps import SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, invalid, not_found
from api.routes.jobs import ERRORS
from api.schemas import DatasetPublic, DatasetsPublic, ErrorPublic
from api.uploads import DatasetRepo, StorageFull
from tricklab.contract import JobStatus
from tricklab.server.records import new_id
from tricklab.server.store import Store
from tricklab.settings import Settings
from tricks.catalog import BUILTINS, builtin_meta
from tricks.uploads import UploadError, read_upload

router = APIRouter(prefix="/datasets", tags=["datasets"])

READ_CHUNK = 1 << 20


def repo_of(store: Store, settings: Settings) -> DatasetRepo:
    return DatasetRepo(store.r, settings.key_prefix, settings.datasets_dir)


def builtin_public(name: str) -> dict[str, Any]:
    meta = builtin_meta(name)
    assert meta is not None
    return meta.model_dump()


@router.get("", response_model=DatasetsPublic, responses=ERRORS)
def read_datasets(store: StoreDep, settings: SettingsDep, tenant: TenantDep) -> dict[str, Any]:
    """List the built-in datasets and your uploads."""
    data = [builtin_public(n) for n in BUILTINS] + repo_of(store, settings).list(tenant)
    return {"data": data, "count": len(data)}


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=ERRORS)
def read_dataset(
    dataset_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> dict[str, Any]:
    """Read one dataset's metadata."""
    if dataset_id in BUILTINS:
        return builtin_public(dataset_id)
    ds = repo_of(store, settings).get(dataset_id, tenant)
    if ds is None:
        raise not_found("dataset", dataset_id)
    return ds


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    responses={
        **ERRORS,
        413: {"model": ErrorPublic, "description": "Upload too large, or storage quota full"},
        507: {"model": ErrorPublic, "description": "The server's artifact disk is full"},
    },
)
async def create_dataset(
    file: Annotated[
        UploadFile, File(description=".npz (x, y[, x_val, y_val]) or .csv with a label column")
    ],
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    principal: PrincipalDep,
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> dict[str, Any]:
    """Upload a dataset; it is validated fully before anything is stored."""
    chunks, size = [], 0
    while chunk := await file.read(READ_CHUNK):
        size += len(chunk)
        quotas.check_upload_size(size, principal.limits)
        chunks.append(chunk)
    data = b"".join(chunks)
    filename = file.filename or ""
    ds_id = new_id("d")
    try:
        arrays, meta = await run_in_threadpool(read_upload, data, filename, dataset_id=ds_id)
    except UploadError as e:
        raise invalid(["file", e.field] if e.field != "file" else ["file"], e.message) from None
    public = meta.model_dump()
    public.update(name=name or filename, filename=filename, bytes=size)
    repo = repo_of(store, settings)
    await run_in_threadpool(quotas.check_dataset_storage, repo, tenant, size, principal.limits)
    try:
        saved = await run_in_threadpool(repo.save, tenant, public, arrays)
    except StorageFull:
        raise ApiError(
            507,
            "insufficient_storage",
            f"the server's artifact disk is full, so the {size} byte upload was not stored "
            "(nothing was kept and your storage quota is unchanged); retry later or ask the "
            "operator to free space",
            {"bytes": size},
        ) from None
    response.headers["Location"] = f"/datasets/{ds_id}"
    return saved


@router.delete(
    "/{dataset_id}",
    status_code=204,
    response_class=Response,
    responses={
        **ERRORS,
        409: {
            "model": ErrorPublic,
            "description": "A built-in, or a queued or running job uses it (details: job_ids)",
        },
    },
)
def delete_dataset(
    dataset_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> Response:
    """Delete an uploaded dataset (its file and metadata), unless a queued or running job uses it."""
    if dataset_id in BUILTINS:
        raise ApiError(
            409,
            "builtin_dataset",
            f"'{dataset_id}' is a built-in dataset and cannot be deleted",
            {"dataset": dataset_id},
        )
    repo = repo_of(store, settings)
    if repo.get(dataset_id, tenant) is None:
        raise not_found("dataset", dataset_id)
    if users := active_users(store, tenant, dataset_id):
        shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
        raise ApiError(
            409,
            "dataset_in_use",
            f"dataset '{dataset_id}' is used by {len(users)} queued or running job(s): {shown}; "
            "cancel them (POST /jobs/{id}/cancel) or wait for them to finish, then delete it",
            {"dataset": dataset_id, "job_ids": users},
        )
    repo.delete(dataset_id, tenant)
    return Response(status_code=204)


def active_users(store: Store, tenant: str, dataset_id: str) -> list[str]:
    """Ids of the tenant's queued and running jobs that train on the dataset (at most the
    tenant's max_active_jobs records are read)."""
    ids = [*store.jobs_in(JobStatus.QUEUED, tenant), *store.jobs_in(JobStatus.RUNNING, tenant)]
    if not ids:
        return []
    with store.r.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(store.keys.job(job_id), "spec")
        specs = pipe.execute()
    users = []
    for job_id, raw in zip(ids, specs, strict=True):
        try:
            data = (json.loads(raw) or {}).get("data") or {} if raw else {}
        except (ValueError, AttributeError):
            continue
        if isinstance(data, dict) and data.get("dataset") == dataset_id:
            users.append(job_id)
    return sorted(users)
