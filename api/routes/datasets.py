"""Datasets: the built-ins and the tenant's uploads (.npz, .csv, .parquet, image archives).

Ingest is tricks.ingest (streamed from disk, bounded memory); the stored layout is
tricks.uploads.open_stored's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api import quotas
from api.auth import Limits, PrincipalDep
from api.dataset_samples import sample_grid
from api.deps import SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, field_errors, invalid, not_found, summary
from api.heavy import HeavyDep, HeavyPool
from api.routes.jobs import ERRORS
from api.schemas import DatasetPublic, DatasetsPublic, ErrorPublic
from api.tus import Uploads
from api.upload_stream import receive_multipart
from api.uploads import DatasetRepo, is_full
from tricklab.contract import JobStatus
from tricklab.server.records import new_id
from tricklab.server.store import Store
from tricklab.settings import Settings
from tricks.catalog import BUILTINS, builtin_meta
from tricks.ingest.common import IngestLimits
from tricks.ingest.pipeline import FORMATS, ingest_file, parse_image_size
from tricks.uploads import UploadError, open_stored

router = APIRouter(prefix="/datasets", tags=["datasets"])


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


class DatasetFromUpload(BaseModel):
    """POST /datasets as JSON: turn a finished resumable upload (POST /uploads) into a dataset."""

    model_config = ConfigDict(extra="forbid")
    upload: str = Field(min_length=1, max_length=64, description="The id of a finished upload.")
    name: str | None = Field(None, max_length=200)
    image_size: str | int | None = Field(
        None, description="Image archives: resize every image to this size (32 or 32x32)."
    )


UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": FORMATS},
                    "name": {"type": "string", "maxLength": 200},
                    "image_size": {"type": "string", "description": "e.g. 32 or 32x32"},
                },
            }
        },
        "application/json": {"schema": DatasetFromUpload.model_json_schema()},
    },
}


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    responses={
        **ERRORS,
        404: {"model": ErrorPublic, "description": "JSON body: no such upload"},
        409: {"model": ErrorPublic, "description": "JSON body: the upload is not complete"},
        413: {"model": ErrorPublic, "description": "Upload too large, or storage quota full"},
        503: {"model": ErrorPublic, "description": "The API's compute pool is full; retry"},
        507: {"model": ErrorPublic, "description": "The server's artifact disk is full"},
    },
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def create_dataset(
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    principal: PrincipalDep,
    heavy: HeavyDep,
) -> dict[str, Any]:
    """Upload a dataset (multipart `file`, or JSON naming a finished resumable upload).

    The body streams to disk and is parsed from there with bounded memory; it is
    validated fully, and checked against your storage quota by the bytes it will store,
    before anything is kept. The parse runs on the API's bounded compute pool (as
    schedule previews do): when it is full the answer is 503 or 429 with Retry-After."""
    limits = principal.limits
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("application/json"):
        return await _from_tus(request, response, store, settings, tenant, limits, heavy)
    if not ctype.startswith("multipart/form-data"):
        raise invalid(
            ["file"], f"Field required: send the dataset as the multipart field 'file' ({FORMATS})"
        )
    try:
        got = await receive_multipart(
            request, settings.datasets_dir, lambda n: quotas.check_upload_size(n, limits)
        )
    except OSError as e:
        if is_full(e):
            raise _full(e, 0) from None
        raise
    try:
        if got.filename is None:
            raise invalid(
                ["file"],
                f"Field required: send the dataset as the multipart field 'file' ({FORMATS})",
            )
        name = got.fields.get("name")
        if name is not None and len(name) > 200:
            raise invalid(["name"], "the name is longer than 200 characters")
        saved = await heavy.run(
            tenant, _store, got.path, got.filename, got.size, name,
            got.fields.get("image_size"), store, settings, tenant, limits,
        )  # fmt: skip
    finally:
        got.discard()
    response.headers["Location"] = f"/datasets/{saved['id']}"
    return saved


async def _from_tus(
    request: Request,
    response: Response,
    store: Store,
    settings: Settings,
    tenant: str,
    limits: Limits,
    heavy: HeavyPool,
) -> dict[str, Any]:
    """The JSON branch: ingest a finished tus upload's file (api/tus.py), then release it."""
    try:
        body = DatasetFromUpload.model_validate_json(await request.body())
    except ValidationError as e:
        details = field_errors(e.errors())
        raise ApiError(422, "validation_error", summary(details), details) from None
    from api.tus import release_upload, take_upload  # the tus server (api/tus.py)

    path, filename = await run_in_threadpool(take_upload, store, settings, tenant, body.upload)
    if not filename:
        raise invalid(
            ["upload"],
            f"upload {body.upload} has no filename (tus Upload-Metadata 'filename'), so its "
            f"format is unknown; upload it again with one ({FORMATS})",
        )
    size = path.stat().st_size
    quotas.check_upload_size(size, limits)
    saved = await heavy.run(
        tenant, _store, path, filename, size, body.name, body.image_size,
        store, settings, tenant, limits, body.upload,
    )  # fmt: skip
    await run_in_threadpool(release_upload, store, settings, tenant, body.upload)
    response.headers["Location"] = f"/datasets/{saved['id']}"
    return saved


def _store(
    path: Path,
    filename: str,
    size: int,
    name: str | None,
    image_size: str | int | None,
    store: Store,
    settings: Settings,
    tenant: str,
    limits: Limits,
    upload_id: str = "",  # the tus upload it is made from, if any: its bytes do not count
) -> dict[str, Any]:
    """Parse the file into the stored layout (its bytes reserved in the quota before writing),
    then record it."""
    repo = repo_of(store, settings)
    ds_id = new_id("d")
    try:
        meta = ingest_file(
            path,
            filename,
            datasets_dir=settings.datasets_dir,
            dataset_id=ds_id,
            limits=IngestLimits(max_inflated_bytes=8 * limits.max_upload_bytes),
            image_size=parse_image_size(image_size),
            reserve=lambda stored: quotas.reserve_dataset_storage(
                repo, Uploads.of(store, settings), tenant, ds_id, stored, limits, upload_id
            ),
        )
        public = meta.model_dump()
        public.update(name=name or filename, filename=filename, bytes=size)
        return repo.record(tenant, public)  # drops the reservation with the record
    except BaseException as e:
        repo.release(tenant, ds_id)  # nothing was kept: neither are the bytes it held
        if isinstance(e, UploadError):
            raise invalid(_loc(e.field), e.message) from None
        if isinstance(e, OSError) and is_full(e):
            raise _full(e, size) from None
        raise


def _loc(upload_field: str) -> list[str | int]:
    """["file"], ["file", "x"] ... for a problem in the file; ["image_size"] for that field."""
    if upload_field == "image_size":
        return ["image_size"]
    return ["file"] if upload_field == "file" else ["file", upload_field]


def _full(e: OSError, size: int) -> ApiError:
    return ApiError(
        507,
        "insufficient_storage",
        f"the server's artifact disk is full, so the {size} byte upload was not stored "
        "(nothing was kept and your storage quota is unchanged); retry later or ask the "
        "operator to free space",
        {"bytes": size},
    )


@router.get(
    "/{dataset_id}/samples.png",
    response_class=Response,
    responses={
        **ERRORS,
        200: {"content": {"image/png": {}}, "description": "A PNG grid of a few samples"},
        409: {"model": ErrorPublic, "description": "Not an image dataset, or a built-in"},
    },
)
def read_samples(
    dataset_id: str,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
    n: Annotated[int, Query(ge=1, le=64, description="How many samples")] = 16,
) -> Response:
    """A PNG grid of `n` samples of an uploaded image dataset (evenly spaced over it)."""
    if dataset_id in BUILTINS:
        raise ApiError(
            409,
            "not_stored",
            f"'{dataset_id}' is a built-in: it has no stored samples",
            {"dataset": dataset_id},
        )
    ds = repo_of(store, settings).get(dataset_id, tenant)
    if ds is None:
        raise not_found("dataset", dataset_id)
    if ds.get("kind") != "image":
        raise ApiError(
            409,
            "not_images",
            f"dataset '{dataset_id}' is {ds.get('kind')} (shape {ds.get('input_shape')}); "
            "samples.png is for image datasets",
            {"dataset": dataset_id, "kind": ds.get("kind")},
        )
    try:
        x = open_stored(settings.datasets_dir, dataset_id)["x"]
    except FileNotFoundError:
        raise not_found("dataset", dataset_id) from None
    return Response(
        sample_grid(x, n),
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600"},
    )


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
