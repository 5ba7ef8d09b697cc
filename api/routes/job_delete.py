"""DELETE /jobs/{id}: a job and everything it stored; a running one is cancelled first."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import SettingsDep, StoreDep, TenantDep
from api.errors import ApiError, not_found
from api.routes.jobs import ERRORS, load_job
from api.schemas import CancelPublic, ErrorPublic
from tricklab.server import retention
from tricklab.server.outcomes import JobNotFound
from tricklab.server.store import Store
from tricklab.settings import Settings

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses={
        **ERRORS,
        202: {
            "model": CancelPublic,
            "description": "Still running after the wait: cancelled, and deleted once it stops",
        },
        409: {"model": ErrorPublic, "description": "A sweep's child: delete the sweep instead"},
    },
)
async def delete_job(
    job_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> Response:
    """Delete a job and everything it stored: record, curves, events, logs, checkpoints, model.

    A queued job is cancelled and deleted at once. A running one is cancelled first and
    deleted when its worker has stopped it: 204 when that happens within
    `TRICKLAB_DELETE_WAIT_S`, otherwise 202 and the API's retention round deletes it once
    it has stopped. A second DELETE of the same job is a 404.
    """
    rec = await run_in_threadpool(load_job, store, job_id, tenant)
    parents = (("sweep", "sweeps", store.keys.sweep), ("search", "searches", store.keys.search))
    for kind, route, key in parents:
        owner = rec.get(f"{kind}_id")
        if owner and await run_in_threadpool(store.r.exists, key(owner)):
            raise ApiError(
                409,
                f"part_of_{kind}",
                f"job '{job_id}' belongs to {kind} '{owner}', whose results would lose it; "
                f"delete the {kind} instead (DELETE /{route}/{owner}), which deletes its jobs",
                {f"{kind}_id": owner},
            )
    outcome = await delete_when_stopped(store, settings, job_id, tenant)
    if outcome == "deleted":
        return Response(status_code=204)
    if outcome == "missing":
        raise not_found("job", job_id)
    body = {"id": job_id, "status": outcome, "cancel_requested": True}
    return JSONResponse(body, status_code=202)


async def delete_when_stopped(store: Store, settings: Settings, job_id: str, tenant: str) -> str:
    """Delete the job, cancelling it first if it is not finished and waiting up to
    settings.delete_wait_s for it to stop. 'deleted', 'missing', or the status it still
    has (marked delete_requested: tricklab.server.retention deletes it once finished)."""
    deadline = time.monotonic() + settings.delete_wait_s
    marked = False
    while True:
        res = await run_in_threadpool(retention.delete_job, store, settings, job_id, tenant)
        if res in ("deleted", "missing"):
            return res
        if not marked:  # first, so that an API restart while waiting loses nothing
            if not await run_in_threadpool(retention.request_delete, store, job_id):
                return "missing"
            try:
                await run_in_threadpool(store.cancel, job_id)
            except JobNotFound:
                return "missing"
            marked = True
            continue  # a queued job is cancelled now: delete it without waiting
        if time.monotonic() >= deadline:
            return res
        await asyncio.sleep(0.1)
