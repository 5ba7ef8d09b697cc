"""Every Redis key name tricklab uses, built here and nowhere else.

P is settings.key_prefix ("tl" by default); {tenant} is the owner of what a key holds.

  P:job:{id}                       hash    a job record (JSON fields stored as JSON text)
  P:job:{id}:ev                    stream  the job's events (status, progress, metrics), capped
  P:job:{id}:log                   stream  the job's own log lines, capped
  P:job:{id}:s:names / :{m}:r|b    set + strings  metric series (tricklab.server.series)
  P:t:{tenant}:jobs                zset    every job id of a tenant (score 0; ids sort by time)
  P:t:{tenant}:jobs:{status}       zset    the same, one per status
  P:t:{tenant}:tag:{hex}           set     the tenant's job ids with that tag (hex = the tag's
                                           UTF-8 bytes in hex, so no tag can look like :jobs)
  P:t:{tenant}:datasets            set     the tenant's uploaded dataset ids
  P:t:{tenant}:sweeps              zset    the tenant's sweep ids
  P:t:{tenant}:hash:{spec_hash}    zset    the tenant's jobs with that spec hash (reuse index)
  P:t:{tenant}:idem:{scope}:{h}    string  an Idempotency-Key claim (h = sha256 of the key)
  P:ds:{id}                        hash    an uploaded dataset's metadata
  P:upload:{id} / :lock            hash / string  a resumable (tus) upload / its PATCH lock
  P:t:{tenant}:uploads             set     the tenant's unfinished uploads (api/tus.py)
  P:uploads                        zset    upload id -> when it expires (unix s): the sweep
  P:sweep:{id}                     hash    a sweep record
  P:sweep:{id}:payload|lock|dirty  hash / string / string  its pending children, scheduler lock
  P:sweeps:open                    hash    sweep id -> tenant: sweeps with pending children
  P:key:{key_id} / P:keys          hash / set  API keys (stored as sha256 of the secret)
  P:rl:{key_id}                    hash    a key's rate-limit token bucket
  P:streams:{caller}               zset    a caller's open event streams (score: lease end, s)
  P:af:ip:{addr} / P:af:key:{id}   hash    failed-authentication buckets (api/auth.py)
  P:hub:{id}:wake                  stream  wakes one API process's stream hub (short TTL)
  P:events                         stream  status changes of all jobs (dashboards), capped
  P:workers / P:worker:{name}      zset / hash  worker heartbeats / a worker's self-description
  P:reconcile:lock / :missing      string / hash  the reconciler's lock and its sightings
  P:deleted                        zset    ids of jobs deleted lately (score: when), so the
                                           retention round can drop a late worker write
  P:retention:lock                 string  one retention round at a time (tricklab.server.retention)
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

    def job_data_keys(self, job_id: str, series_names: Iterable[str]) -> list[str]:
        """Every key that holds a job's own data but its hash: events, log, series."""
        prefix = self.job_series(job_id)
        return [
            self.job_events(job_id),
            self.job_log(job_id),
            self.series_names(prefix),
            *self.series_keys(prefix, series_names),
        ]

    @property
    def deleted_jobs(self) -> str:
        """zset: ids of jobs deleted lately -> when (unix s)."""
        return f"{self.p}:deleted"

    @property
    def retention_lock(self) -> str:
        return f"{self.p}:retention:lock"

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

    def job_tag(self, tenant: str, tag: str) -> str:
        """The tenant's jobs carrying `tag` (GET /jobs?tag=); hex-encoded so that a tag such
        as "jobs:running" cannot make a key that jobs_pattern() matches."""
        return f"{self.p}:t:{tenant}:tag:{tag.encode().hex()}"

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

    def quota_lock(self, tenant: str) -> str:
        """String: the token of the request reserving the tenant's storage (api/quota_lock.py)."""
        return f"{self.p}:t:{tenant}:quota_lock"

    def datasets_pending(self, tenant: str) -> str:
        """Hash: dataset id -> "bytes expires_at", the storage a dataset being written holds."""
        return f"{self.p}:t:{tenant}:datasets_pending"

    def upload(self, upload_id: str) -> str:
        """A resumable upload's record (api/tus.py): tenant, length, offset, metadata, expiry."""
        return f"{self.p}:upload:{upload_id}"

    def upload_lock(self, upload_id: str) -> str:
        """Held by the one PATCH writing an upload (a token with a TTL the writer renews)."""
        return f"{self.p}:upload:{upload_id}:lock"

    def uploads(self, tenant: str) -> str:
        return f"{self.p}:t:{tenant}:uploads"

    @property
    def uploads_expiry(self) -> str:
        """zset: upload id -> when it expires (unix s), every tenant's: what the sweep reads."""
        return f"{self.p}:uploads"

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

    # searches (tricklab.server.searches, api/search_driver.py)
    def searches(self, tenant: str) -> str:
        return f"{self.p}:t:{tenant}:searches"

    def search(self, search_id: str) -> str:
        return f"{self.p}:search:{search_id}"

    @property
    def searches_open(self) -> str:
        """search id -> tenant, for the searches that are not finished."""
        return f"{self.p}:searches:open"

    @property
    def search_wakeups(self) -> str:
        """A list of search ids whose trial just finished: the driver steps them first."""
        return f"{self.p}:searches:wakeups"

    def search_payload(self, search_id: str) -> str:
        """job id -> {spec, extra, queue}: what creating a trial's or confirm run's job needs."""
        return f"{self.p}:search:{search_id}:payload"

    def search_lock(self, search_id: str) -> str:
        return f"{self.p}:search:{search_id}:lock"

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

    def open_streams(self, caller: str) -> str:
        """A caller's (key id, or tenant without a key) open event streams: member = stream
        token, score = when its lease ends (Redis time, s); the API renews live ones."""
        return f"{self.p}:streams:{caller}"

    def stream_hub_wake(self, hub_id: str) -> str:
        """A private stream one API process's stream hub also reads, so that an XADD to it
        ends the hub's blocking XREAD at once when the set of watched jobs grows."""
        return f"{self.p}:hub:{hub_id}:wake"

    def auth_failures_addr(self, addr: str) -> str:
        """Token bucket of failed authentications from one client address."""
        return f"{self.p}:af:ip:{addr}"

    def auth_failures_key(self, key_id: str) -> str:
        """Token bucket of failed authentications naming one key id."""
        return f"{self.p}:af:key:{key_id}"

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
