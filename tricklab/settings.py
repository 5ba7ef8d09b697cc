"""One settings class for API, worker and CLI, read from the environment (and .env)."""

from __future__ import annotations

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

    max_upload_bytes: int = 64 * 2**20
    max_body_bytes: int = 1 * 2**20
    max_job_seconds: int = 24 * 3600
    # A worker is "alive" while its heartbeat is younger than this.
    worker_ttl_s: float = 15.0
    # A running job whose lease is older than this is re-queued by the reaper.
    lease_ttl_s: float = 30.0
    max_restarts: int = 3
    # A queued job missing from the broker's queue lists this long is published again.
    reconcile_after_s: float = 30.0
    events_maxlen: int = 5000

    # Access control (api/auth.py). auto: required unless HOST is a loopback address.
    auth: Literal["auto", "required", "off"] = "auto"
    # Per-tenant limits (api/quotas.py); an API key may override each one.
    max_active_jobs: int = 100  # queued + running
    max_dataset_bytes_total: int = 1 * 2**30  # stored uploads of one tenant
    max_train_samples: int = 2 * 10**9  # training.epochs x n_train of one job
    rate_limit_per_s: float = 20.0  # token bucket per API key
    rate_limit_burst: int = 100
    idempotency_ttl_s: int = 24 * 3600

    @property
    def datasets_dir(self) -> Path:
        return self.artifact_dir / "datasets"

    def job_dir(self, job_id: str) -> Path:
        return self.artifact_dir / "jobs" / job_id


@lru_cache
def get_settings() -> Settings:
    return Settings()
