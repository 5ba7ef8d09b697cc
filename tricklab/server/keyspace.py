"""Every Redis key name tricklab uses, built here and nowhere else.

P is settings.key_prefix ("tl" by default); {tenant} is the owner of what a key holds.

  P:job:{id}                       hash    a job record (JSON fields stored as JSON text)
  P:job:{id}:ev                    stream  the job's events (status, progress, metrics), capped
  P:job:{id}:log                   stream  the job's own log lines, capped
  P:job:{id}:s:names / :{m}:r|b    set + strings  metric series (tricklab.server.series)
  P:t:{tenant}:jobs                zset    every job id of a tenant (score 0; ids sort by time)
  P:t:{tenant}:jobs:{status}       zset    the same, one per status
  P:t:{tenant}:datasets            set     the tenant's uploaded dataset ids
  P:t:{tenant}:sweeps              zset    the tenant's sweep ids
  P:t:{tenant}:hash:{spec_hash}    zset    the tenant's jobs with that spec hash (reuse index)
  P:t:{tenant}:idem:{scope}:{h}    string  an Idempotency-Key claim (h = sha256 of the key)
  P:ds:{id}                        hash    an uploaded dataset's metadata
  P:sweep:{id}                     hash    a sweep record
  P:sweep:{id}:payload|lock|dirty  hash / string / string  its pending children, scheduler lock
  P:sweeps:open                    hash    sweep id -> tenant: sweeps with pending children
  P:key:{key_id} / P:keys          hash / set  API keys (stored as sha256 of the secret)
  P:rl:{key_id}                    hash    a key's rate-limit token bucket
  P:events                         stream  status changes of all jobs (dashboards), capped
  P:workers / P:worker:{name}      zset / hash  worker heartbeats / a worker's self-description
  P:reconcile:lock / :missing      string / hash  the reconciler's lock and its sightings
  P:m:job_seconds:{status}         hash    the job-duration histogram (GET /metrics)

Redis Cluster is not a target: keys of one job share no hash tag.
"""

from __future__ import annotations

from collections.abc import Iterable

from tricklab.contract import STATUSES


class Keyspace:
    """The key names under one prefix. Cheap to make; holds no connection."""

    def __init__(self, prefix: str = "tl") -> None:
        self.p = prefix

    # ------------------------------------------------------------------ jobs
    def job(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}"

    def job_events(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}:ev"

    def job_log(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}:log"

    def job_series(self, job_id: str) -> str:
        """The prefix of a job's metric series (see series_* below)."""
        return f"{self.p}:job:{job_id}:s"

    def jobs(self, tenant: str, status: str | None = None) -> str:
        base = f"{self.p}:t:{tenant}:jobs"
        return f"{base}:{status}" if status else base

    def job_indexes(self, tenant: str) -> list[str]:
        """The tenant's per-status indexes, in STATUSES order (what the Lua scripts get)."""
        return [self.jobs(tenant, s) for s in STATUSES]

    def jobs_pattern(self, status: str | None = None) -> str:
        """A SCAN pattern matching one index of every tenant."""
        return f"{self.p}:t:*:jobs" + (f":{status}" if status else "")

    def tenant_of_jobs_index(self, key: str) -> str:
        """The tenant named by a key that jobs_pattern() matched."""
        return key[len(f"{self.p}:t:") :].split(":jobs", 1)[0]

    @property
    def all_events(self) -> str:
        return f"{self.p}:events"

    # ---------------------------------------------------------------- series
    @staticmethod
    def series_names(series_prefix: str) -> str:
        return f"{series_prefix}:names"

    @staticmethod
    def series_raw(series_prefix: str, name: str) -> str:
        return f"{series_prefix}:{name}:r"

    @staticmethod
    def series_summary(series_prefix: str, name: str) -> str:
        return f"{series_prefix}:{name}:b"

    @classmethod
    def series_keys(cls, series_prefix: str, names: Iterable[str]) -> list[str]:
        """raw, summary, raw, summary, ... of each name (what the series scripts get)."""
        out: list[str] = []
        for n in names:
            out += [cls.series_raw(series_prefix, n), cls.series_summary(series_prefix, n)]
        return out

    # -------------------------------------------------------- tenant things
    def datasets(self, tenant: str) -> str:
        return f"{self.p}:t:{tenant}:datasets"

    def dataset(self, dataset_id: str) -> str:
        return f"{self.p}:ds:{dataset_id}"

    def sweeps(self, tenant: str) -> str:
        return f"{self.p}:t:{tenant}:sweeps"

    def sweep(self, sweep_id: str) -> str:
        return f"{self.p}:sweep:{sweep_id}"

    @property
    def sweeps_open(self) -> str:
        """sweep id -> tenant, for the sweeps that still have pending children."""
        return f"{self.p}:sweeps:open"

    def sweep_payload(self, sweep_id: str) -> str:
        """job id -> {spec, extra, queue}: what creating a pending child needs."""
        return f"{self.p}:sweep:{sweep_id}:payload"

    def sweep_lock(self, sweep_id: str) -> str:
        return f"{self.p}:sweep:{sweep_id}:lock"

    def sweep_dirty(self, sweep_id: str) -> str:
        """Set when a scheduler step was asked for while another held the lock."""
        return f"{self.p}:sweep:{sweep_id}:dirty"

    def reuse(self, tenant: str, spec_hash: str) -> str:
        return f"{self.p}:t:{tenant}:hash:{spec_hash}"

    def idempotency(self, tenant: str, scope: str, key_hash: str) -> str:
        return f"{self.p}:t:{tenant}:idem:{scope}:{key_hash}"

    # ---------------------------------------------------------------- access
    def api_key(self, key_id: str) -> str:
        return f"{self.p}:key:{key_id}"

    @property
    def api_keys(self) -> str:
        return f"{self.p}:keys"

    def rate_bucket(self, key_id: str) -> str:
        return f"{self.p}:rl:{key_id}"

    # --------------------------------------------------------------- workers
    @property
    def workers(self) -> str:
        return f"{self.p}:workers"

    def worker(self, name: str) -> str:
        return f"{self.p}:worker:{name}"

    @property
    def reconcile_lock(self) -> str:
        return f"{self.p}:reconcile:lock"

    @property
    def reconcile_missing(self) -> str:
        return f"{self.p}:reconcile:missing"

    # --------------------------------------------------------------- metrics
    def job_seconds(self, status: str) -> str:
        return f"{self.p}:m:job_seconds:{status}"
