"""One settings class for API, worker and CLI, read from the environment (and .env)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRICKLAB_", env_file=".env", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "TRICKLAB_REDIS_URL"),
        description="Redis for the broker, job records, series and events.",
    )
    artifact_dir: Path = Field(
        Path("var/artifacts"),
        validation_alias=AliasChoices("ARTIFACT_DIR", "TRICKLAB_ARTIFACT_DIR"),
        description="Shared filesystem path for uploads, checkpoints and models.",
    )
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("HOST", "TRICKLAB_HOST"))
    port: int = Field(8000, validation_alias=AliasChoices("PORT", "TRICKLAB_PORT"))
    key_prefix: str = Field("tl", description="Prefix of every Redis key tricklab writes.")

    max_upload_bytes: int = 4 * 2**30  # one dataset file; ingest streams it from disk
    max_body_bytes: int = 1 * 2**20
    # A resumable upload (POST /uploads, api/tus.py) not finished this long after it was
    # created is removed (file and record), lazily on access and by the retention round.
    upload_expiry_s: float = Field(24 * 3600.0, gt=0)
    max_job_seconds: int = 24 * 3600
    # Each worker process keeps the stored arrays of recently used datasets (memory-mapped,
    # tricks.data_cache) up to this many bytes, so a sweep's jobs read a dataset once.
    data_cache_bytes: int = Field(4 * 2**30, ge=0)
    # A worker is "alive" while its heartbeat is younger than this.
    worker_ttl_s: float = 15.0
    # A running job whose lease is older than this is re-queued by the reaper.
    lease_ttl_s: float = 30.0
    max_restarts: int = 3
    # A queued job missing from the broker's queue lists this long is published again.
    reconcile_after_s: float = 30.0
    # A worker retries the writes that end a job (claim, result, terminal status, the
    # job's log) through a Redis outage this long, with backoff, before giving up.
    finish_retry_s: float = 60.0
    events_maxlen: int = 5000

    # Retention (tricklab.server.retention; the API runs a round every retention_interval_s).
    # "last" (default): checkpoint_grace_hours after a job finished, it keeps only its
    # newest checkpoint and the per-epoch ones of its last and best epochs (fork points),
    # so disk per job stays ~2 checkpoints, not one per epoch. "epochs": keep whatever
    # training.keep_checkpoints wrote (every epoch by default). Running jobs are never
    # touched (resume reads their newest checkpoints).
    retain_checkpoints: Literal["last", "epochs"] = "last"
    # How long a finished job keeps every checkpoint (to fork from any epoch) under "last".
    checkpoint_grace_hours: float = Field(24.0, ge=0)
    # A finished job is deleted (record, series, events, logs, files) this many days after
    # it finished; 0 keeps finished jobs forever.
    job_ttl_days: float = Field(30.0, ge=0)
    # Seconds between retention rounds in the API (one API process at a time); 0: none.
    retention_interval_s: float = Field(300.0, ge=0)
    # A worker with no heartbeat for this many worker_ttl_s is dropped from the worker list.
    worker_prune_after: float = Field(20.0, gt=1)
    # DELETE /jobs/{id} of a running job cancels it and waits this long for it to stop
    # before answering 202 (deleted once it stops) instead of 204.
    delete_wait_s: float = Field(15.0, ge=0)
    # GET /jobs with sort=, q=, tag= or sweep_id= reads (one pipelined HMGET each) and sorts
    # in Python at most this many of the tenant's newest jobs (of the status asked for).
    list_scan_max: int = 10_000

    # `tricklab up` (tricklab/client/up.py) restarts a worker or API that exits after
    # up_restart_backoff_s, doubling for each exit in a row up to up_restart_backoff_max_s;
    # a process that stayed up up_stable_s starts again from the first delay.
    up_restart_backoff_s: float = Field(default=1.0, gt=0)
    up_restart_backoff_max_s: float = Field(default=30.0, gt=0)
    up_stable_s: float = Field(default=60.0, gt=0)

    # Access control (api/auth.py). auto: required unless HOST is a loopback address.
    auth: Literal["auto", "required", "off"] = "auto"
    # Per-tenant limits (api/quotas.py); an API key may override each one.
    max_active_jobs: int = 100  # queued + running
    max_dataset_bytes_total: int = 20 * 2**30  # bytes stored (.npy) of one tenant's datasets
    max_train_samples: int = 2 * 10**9  # training.epochs x n_train of one job
    rate_limit_per_s: float = 20.0  # token bucket per API key
    rate_limit_burst: int = 100
    # training.epochs x steps per epoch of one job, and epochs x steps_per_epoch of a preview
    max_total_steps: int = 10_000_000
    max_parameters: int = 100_000_000  # trainable parameters of one job's model (plan.parameters)
    # CPU-heavy request work (schedule previews, planned lr curves, dataset upload parses:
    # api/heavy.py) runs in its own pool of this many threads, with at most heavy_queue more
    # waiting (then 503) and at most heavy_per_tenant running or waiting per tenant (then 429).
    heavy_workers: int = 2
    heavy_queue: int = 16
    heavy_per_tenant: int = 4
    idempotency_ttl_s: int = 24 * 3600
    # Event streams (api/stream_hub.py): most open GET /jobs/{id}/events per API key (per
    # tenant without a key), across API processes; one past it answers 429.
    max_streams_per_key: int = 100
    # The API's async Redis pool: most connections, and how long a request waits for a free
    # one before a 503 "the API's Redis connection pool is exhausted".
    redis_pool_size: int = 100
    redis_pool_timeout_s: float = 2.0
    # Failed authentications (api/auth.py), token buckets: per client address (past it every
    # attempt from that address, even with a valid key, is 429 until a token is back) and per
    # key id (past it wrong secrets for that id are 429; the right secret still passes).
    auth_failures_per_min_addr: float = 10.0
    auth_failures_burst_addr: int = 20
    auth_failures_per_min_key: float = 10.0
    auth_failures_burst_key: int = 20

    @property
    def datasets_dir(self) -> Path:
        return self.artifact_dir / "datasets"

    def job_dir(self, job_id: str) -> Path:
        return self.artifact_dir / "jobs" / job_id


def is_loopback(host: str | None) -> bool:
    """localhost or a loopback IP: where `auth: auto` needs no key (api/auth.py, `tricklab up`)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
