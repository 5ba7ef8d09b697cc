"""Preview a learning-rate schedule without training."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import Response

from api import quotas
from api.auth import PrincipalDep
from api.examples import PREVIEW_EXAMPLES
from api.heavy import HeavyDep
from api.routes.jobs import ERRORS
from api.schemas import PreviewPublic, PreviewRequest
from tricks.schedule_steps import realised
from tricks.schedules import lr_sampled

router = APIRouter(prefix="/schedules", tags=["schedules"])

# Without max_points, longer previews are downsampled to this many points.
DEFAULT_MAX_POINTS = 100_000


@router.post("/preview", response_model=PreviewPublic, responses=ERRORS)
async def preview_schedule(
    body: Annotated[PreviewRequest, Body(openapi_examples=PREVIEW_EXAMPLES)],
    principal: PrincipalDep,
    heavy: HeavyDep,
) -> Response:
    """Compute the lr of every optimizer step for a schedule (the curve a job would follow)."""
    quotas.check_preview_steps(body.epochs, body.steps_per_epoch, principal.limits)
    return await heavy.run(principal.tenant, _preview, body)


def _preview(body: PreviewRequest) -> Response:
    """On the heavy pool: the sampled curve (never every step), rendered to JSON there too."""
    steps, lrs = lr_sampled(
        lr0=body.lr,
        schedule=body.schedule,
        steps_per_epoch=body.steps_per_epoch,
        epochs=body.epochs,
        max_points=body.max_points or DEFAULT_MAX_POINTS,
    )
    out = {
        "step": steps.tolist(),
        "lr": lrs.tolist(),
        "total_steps": body.epochs * body.steps_per_epoch,
        "schedule": realised(
            body.schedule, steps_per_epoch=body.steps_per_epoch, epochs=body.epochs
        ),
    }
    return Response(
        PreviewPublic.model_validate(out).model_dump_json(), media_type="application/json"
    )
