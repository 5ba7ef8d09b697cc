"""POST /jobs?reuse=true: answer with an existing succeeded job of the same spec (tricklab.server.reuse)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query

from tricklab.server.reuse import find_succeeded, spec_hash
from tricklab.server.store import Store
from tricks.spec import JobSpec


def reuse_flag(
    reuse: Annotated[
        bool,
        Query(
            description="Return an existing succeeded job with the same spec (same canonical "
            "hash, seed included) with 200 instead of training again."
        ),
    ] = False,
) -> bool:
    return reuse


ReuseDep = Annotated[bool, Depends(reuse_flag)]


def job_hash(spec: JobSpec) -> str:
    return spec_hash(spec.model_dump(mode="json"))


def reused_job(store: Store, tenant: str, spec: JobSpec) -> dict[str, Any] | None:
    return find_succeeded(store, tenant, job_hash(spec))
