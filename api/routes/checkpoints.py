"""A job's checkpoints: the list, and one downloaded, for any job that wrote them.

Succeeded, failed and cancelled jobs alike (a running one too: the list grows).
Only end-of-epoch checkpoints are listed, by `epoch` = epochs completed (what
POST /jobs/{id}/fork's `from_epoch` names): the pinned ones in
`checkpoints/epochs/` (tricks.pinned, kept with training.keep_checkpoints
"epochs") and any of the newest two rolling `ckpt-<step>.pt` files
(tricks.checkpoint) that sits at an epoch's last update. Mid-epoch checkpoints
(written on preemption or at the time limit) are resume points, not listed.

The file is served as stored: a `torch.save` archive that holds only tensors,
numbers, strings, lists and dicts, so it loads with
`torch.load(path, weights_only=True)` (no pickled code runs); `state["model"]`
is the model's state_dict, with the optimizer, RNG and run state beside it.
The API never imports torch, so it cannot convert it to safetensors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from api.deps import SettingsDep, StoreDep, TenantDep
from api.errors import ApiError
from api.routes.jobs import ERRORS, load_job
from api.schemas import ErrorPublic
from tricklab.server.records import iso
from tricks.pinned import PINNED_DIR

router = APIRouter(prefix="/jobs", tags=["jobs"])

_ROLLING = re.compile(r"^ckpt-(\d+)\.pt$")  # tricks.checkpoint.checkpoint_path
_PINNED = re.compile(r"^epoch-(\d+)\.pt$")  # tricks.pinned.pinned_path
LOAD_HINT = "torch.load(path, weights_only=True); state['model'] is the state_dict"


class CheckpointPublic(BaseModel):
    epoch: int = Field(description="Epochs completed: the state after this many epochs")
    step: int = Field(description="Optimizer updates completed (epoch × steps_per_epoch)")
    bytes: int
    created: str | None = Field(description="When the file was written (UTC, ISO 8601)")
    url: str = Field(description="GET it to download the checkpoint file")


class CheckpointsPublic(BaseModel):
    data: list[CheckpointPublic]
    count: int
    format: str = Field(
        description="What the files are and how to load them safely", default=LOAD_HINT
    )


def epoch_checkpoints(checkpoint_dir: Path, steps_per_epoch: int) -> dict[int, Path]:
    """{epochs completed: file}, pinned files first, then epoch-end rolling ones."""
    found: dict[int, Path] = {}
    pinned = checkpoint_dir / PINNED_DIR
    if pinned.is_dir():
        for p in pinned.iterdir():
            if (m := _PINNED.match(p.name)) and p.is_file():
                found[int(m.group(1))] = p
    if checkpoint_dir.is_dir() and steps_per_epoch > 0:
        for p in checkpoint_dir.iterdir():
            m = _ROLLING.match(p.name)
            if m and int(m.group(1)) % steps_per_epoch == 0 and p.is_file():
                found.setdefault(int(m.group(1)) // steps_per_epoch, p)
    found.pop(0, None)  # a fork's seed at step 0 would be a fresh start, not an epoch
    return dict(sorted(found.items()))


def _checkpoints(rec: dict[str, Any], job_dir: Path) -> tuple[dict[int, Path], int]:
    spe = int((rec.get("plan") or {}).get("steps_per_epoch") or 0)
    return epoch_checkpoints(job_dir / "checkpoints", spe), spe


@router.get("/{job_id}/checkpoints", response_model=CheckpointsPublic, responses=ERRORS)
def read_checkpoints(
    job_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> dict[str, Any]:
    """List a job's end-of-epoch checkpoints (any status: failed and cancelled jobs too)."""
    rec = load_job(store, job_id, tenant)
    found, spe = _checkpoints(rec, settings.job_dir(job_id))
    data = []
    for epoch, path in found.items():
        try:
            st = path.stat()
        except FileNotFoundError:  # pruned between the listing and now
            continue
        data.append(
            {
                "epoch": epoch,
                "step": epoch * spe,
                "bytes": st.st_size,
                "created": iso(st.st_mtime),
                "url": f"/jobs/{job_id}/checkpoints/{epoch}",
            }
        )
    return {"data": data, "count": len(data), "format": LOAD_HINT}


@router.get(
    "/{job_id}/checkpoints/{epoch}",
    response_class=FileResponse,
    responses={
        **ERRORS,
        200: {
            "content": {"application/octet-stream": {}},
            "description": f"The checkpoint as stored (torch.save): {LOAD_HINT}",
        },
        404: {"model": ErrorPublic, "description": "No such job, or no checkpoint at that epoch"},
    },
)
def read_checkpoint(
    job_id: str,
    epoch: Annotated[int, PathParam(description="Epochs completed")],
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> FileResponse:
    """Download the checkpoint after `epoch` epochs (torch.load(path, weights_only=True))."""
    rec = load_job(store, job_id, tenant)
    found, _ = _checkpoints(rec, settings.job_dir(job_id))
    path = found.get(epoch)
    if path is None or not path.is_file():
        have = ", ".join(str(e) for e in found) or "none"
        raise ApiError(
            404,
            "not_found",
            f"job '{job_id}' has no checkpoint after epoch {epoch} (it has: {have}); "
            f"GET /jobs/{job_id}/checkpoints lists them",
            {"epoch": epoch, "epochs": list(found)},
        )
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{job_id}-epoch-{epoch:05d}.pt",
    )
