"""A job record as stored in its Redis hash: every field a string, the JSON ones as JSON
text; `decode` turns one back into the dict the API and workers use."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from tricklab.contract import JobStatus

JSON_FIELDS = (
    "spec", "error", "progress", "metrics", "best", "result", "lineage", "plan", "dataset_meta",
    "tags",  # PATCH /jobs/{id}: a JSON list of strings (notes is plain text)
)  # fmt: skip


# Ids: kind + 12 hex digits of unix ms + RANDOM_HEX random hex digits (64 bits). Ids made
# before that change had 8 random digits (32 bits); routes accept both lengths.
RANDOM_HEX = 16


def new_id(kind: str = "j") -> str:
    """Time-sortable id: kind + 12 hex digits of unix ms + 16 random hex digits (64 bits)."""
    return f"{kind}{int(time.time() * 1000):012x}{secrets.token_hex(RANDOM_HEX // 2)}"


def new_ids(n: int, kind: str = "j") -> list[str]:
    """n time-sortable ids drawn at once that also sort in the order drawn: one time
    prefix and consecutive tails from a random 64-bit start (new_id's random digits alone
    would order ids drawn in the same millisecond at random)."""
    start = secrets.randbelow(2 ** (4 * RANDOM_HEX) - n)
    ms = int(time.time() * 1000)
    return [f"{kind}{ms:012x}{start + i:0{RANDOM_HEX}x}" for i in range(n)]


def iso(ts: str | float | None) -> str | None:
    if ts in (None, ""):
        return None
    return datetime.fromtimestamp(float(ts), tz=UTC).isoformat().replace("+00:00", "Z")


def encode_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Record fields as stored: JSON fields (and non-strings) as JSON text."""
    return {
        k: json.dumps(v) if k in JSON_FIELDS or not isinstance(v, str) else v
        for k, v in fields.items()
    }


def new_record(
    job_id: str,
    tenant: str,
    spec: dict[str, Any],
    queue: str,
    *,
    now: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The hash of a job that was just submitted (queued, no attempt yet)."""
    record = {
        "id": job_id,
        "tenant": tenant,
        "name": spec.get("name") or "",
        "status": JobStatus.QUEUED.value,
        "spec": json.dumps(spec),
        "queue": queue,
        "created_at": now,
        "started_at": "",
        "finished_at": "",
        "attempts": "0",
        "error": "null",
        "progress": "null",
        "metrics": "{}",
        "best": "null",
        "result": "null",
        "lineage": "null",
        "cancel_requested": "0",
        "worker": "",
        "lease_until": "",
    }
    record.update(encode_fields(extra or {}))
    return record


def decode(h: dict[str, str]) -> dict[str, Any]:
    job: dict[str, Any] = dict(h)
    for f in JSON_FIELDS:
        if f in job:
            job[f] = json.loads(job[f]) if job[f] else None
    job["attempts"] = int(job.get("attempts") or 0)
    job["cancel_requested"] = job.get("cancel_requested") == "1"
    for f in ("created_at", "started_at", "finished_at"):
        job[f] = iso(job.get(f))
    job["lease_until"] = float(job["lease_until"]) if job.get("lease_until") else None
    return job
