"""Preview a learning-rate schedule without training."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body

from api.downsample import keep_indices
from api.examples import PREVIEW_EXAMPLES
from api.routes.jobs import ERRORS
from api.schemas import PreviewPublic, PreviewRequest
from tricks.schedules import lr_curve

router = APIRouter(prefix="/schedules", tags=["schedules"])

# Without max_points, longer previews are downsampled to this many points.
DEFAULT_MAX_POINTS = 100_000


@router.post("/preview", response_model=PreviewPublic, responses=ERRORS)
def preview_schedule(
    body: Annotated[PreviewRequest, Body(openapi_examples=PREVIEW_EXAMPLES)],
) -> dict[str, Any]:
    """Compute the lr of every optimizer step for a schedule (the curve a job would follow)."""
    curve = lr_curve(
        lr0=body.lr,
        schedule=body.schedule,
        steps_per_epoch=body.steps_per_epoch,
        epochs=body.epochs,
    )
    idx = keep_indices(curve, body.max_points or DEFAULT_MAX_POINTS)
    return {
        "step": idx.tolist(),
        "lr": np.asarray(curve[idx]).tolist(),
        "total_steps": int(curve.size),
    }
