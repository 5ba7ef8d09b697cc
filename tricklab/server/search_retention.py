"""Retention for searches: a search and its jobs go as a whole, never a trial alone.

A search's trials are not deleted one by one (the driver would take a missing trial job
for one to create again, and the record's best/confirm would point at nothing). A search
goes in one of two ways, both in a retention round (tricklab.server.retention):

- its deletion was asked for (DELETE /searches/{id} answered 202 because trials were still
  running): once every job of it has stopped, the jobs and then the record are deleted;
- it expired: it is finished (not open: the driver will start nothing more) and every job
  of it finished more than settings.job_ttl_days ago.

Each is done under the search's lock, so a driver step never runs against a search that is
being deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tricklab.contract import TERMINAL
from tricklab.server.searches import SearchNotFound, SearchStore
from tricklab.server.store import Store
from tricklab.settings import Settings

DeleteJobs = Callable[[Store, Settings, list[str], str], list[str]]


def request_delete(store: Store, search_id: str) -> None:
    """Mark a search to be deleted with its jobs by a retention round once they stopped."""
    store.r.hset(store.keys.search(search_id), "delete_requested", "1")


def search_round(
    store: Store,
    settings: Settings,
    search_id: str,
    finished_before: Callable[[dict[str, Any]], bool],
    delete_jobs: DeleteJobs,
) -> bool:
    """Delete the search and its jobs if it is due (see the module docstring); True if it went.

    `finished_before(job)` says whether a job finished before the TTL's cutoff; `delete_jobs`
    is retention.delete_jobs (passed in: retention imports this module)."""
    ss = SearchStore(store)
    token = ss.acquire(search_id)
    if token is None:
        return False  # the driver is stepping it: the next round looks again
    try:
        try:
            search = ss.get(search_id)
        except SearchNotFound:
            return False
        requested = store.r.hget(store.keys.search(search_id), "delete_requested") == "1"
        if not requested:
            if store.r.hexists(store.keys.searches_open, search_id):
                return False  # the driver may still start trials or confirm runs
            if settings.job_ttl_days <= 0:
                return False
            for job in ss.jobs(search).values():
                if job["status"] not in TERMINAL or not finished_before(job):
                    return False
        remaining = delete_jobs(store, settings, ss.job_ids(search), search["tenant"])
        return not remaining and ss.delete_record(search_id, search["tenant"])
    finally:
        ss.unlock(search_id, token)
