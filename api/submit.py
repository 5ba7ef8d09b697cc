"""The API's half of the one submit path: plan and check a spec, then record and publish it.

    prepare_job   plan against the dataset, max_train_samples, queue, record fields
    submit_job    tricklab.server.submit.submit with the API's publisher; 429 at the quota

POST /jobs and forks call both; a sweep calls prepare_job for every child up front and
leaves the rest to tricklab.server.sweep_scheduler, which starts children through the
same tricklab.server.submit.submit (with `api_enqueue` here, the worker's app there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery

from api import quotas
from api.auth import Limits
from api.planning import choose_queue, plan_job, record_extra
from api.uploads import DatasetRepo
from tricklab.server.outcomes import QuotaExceeded
from tricklab.server.store import Store
from tricklab.server.submit import Enqueue, celery_enqueue, submit
from tricklab.settings import Settings
from tricks.spec import JobSpec


@dataclass(frozen=True)
class PreparedJob:
    """What Store.create_job needs, decided before anything is written."""

    spec: dict[str, Any]  # the validated spec, as JSON
    queue: str
    extra: dict[str, Any]  # record fields besides the spec (api.planning.record_extra)
    plan: dict[str, int]


def prepare_job(
    spec: JobSpec, *, store: Store, settings: Settings, tenant: str, limits: Limits, **more: Any
) -> PreparedJob:
    """Plan a job and check it against the caller's limits; `more` adds record fields.

    Raises SpecError (with its loc) when the spec does not fit its dataset, and a 422
    ApiError when epochs x training samples is above max_train_samples, the steps above
    max_total_steps or the model above max_parameters."""
    repo = DatasetRepo(store.r, settings.key_prefix, settings.datasets_dir)
    meta, plan = plan_job(spec, repo, tenant)
    quotas.check_train_samples(plan["epochs"], plan["n_train"], limits)
    quotas.check_plan(plan, limits, spec.task)  # max_total_steps, max_parameters
    return PreparedJob(
        spec=spec.model_dump(mode="json"),
        queue=choose_queue(spec, store, settings.worker_ttl_s),
        extra=record_extra(spec, meta, plan, **more),
        plan=plan,
    )


def api_enqueue(celery: Celery) -> Enqueue:
    """The API publishes without retries: the record is written, the reconciler covers a miss."""
    return celery_enqueue(celery, retry=False)


def submit_job(
    job: PreparedJob, *, store: Store, celery: Celery, tenant: str, limits: Limits
) -> dict[str, Any]:
    """Record the job and publish it; returns the record. 429 when the tenant is at
    max_active_jobs; a failed publish is logged and the job stays queued for the reconciler."""
    try:
        return submit(
            store,
            job.spec,
            tenant=tenant,
            queue=job.queue,
            extra=job.extra,
            enqueue=api_enqueue(celery),
            max_active=limits.max_active_jobs,
        )
    except QuotaExceeded as e:
        raise quotas.active_jobs_error(e.active, e.max_active) from None
