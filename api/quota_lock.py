"""One tenant's storage reservations, one at a time, in every API process.

Two kinds of request reserve a tenant's max_dataset_bytes_total: tus uploads
(api/tus_quota.py: an Upload-Length, a PATCH's grant) and datasets being written
(api/quotas.reserve_dataset_storage). Each kind's check and reservation is one Lua
script, atomic against its own kind; but each counts the other kind from a read made
before its script, so an upload and a dataset reserved at the same instant could both
pass on the same free bytes. Reserving under this per-tenant lock closes that: the
lock is held from those reads to the end of the script, a few milliseconds. It lapses
after LOCK_TTL_S if its API process died holding it; a request that cannot take it
within WAIT_S (longer than that) is a 503 with Retry-After.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tricklab.server import scripts
from tricklab.server.keyspace import Keyspace

LOCK_TTL_S = 5.0  # a reservation takes milliseconds; this bounds a dead holder's lock
WAIT_S = 6.0  # longer than the TTL: a dead holder's lock lapses before a waiter gives up


@contextmanager
def quota_lock(
    r: Any, keys: Keyspace, tenant: str, busy: Callable[[str], Exception]
) -> Iterator[None]:
    """Hold the tenant's reservation lock for the block; `busy(message)` is raised when it
    cannot be taken within WAIT_S."""
    key, token = keys.quota_lock(tenant), secrets.token_hex(8)
    deadline = time.monotonic() + WAIT_S
    while not r.set(key, token, nx=True, px=int(LOCK_TTL_S * 1000)):
        if time.monotonic() > deadline:
            raise busy(f"your other uploads held the storage quota's lock for {WAIT_S:g} s; retry")
        time.sleep(0.001 + random.random() * 0.004)
    try:
        yield
    finally:
        scripts.register(r, "delete_if_equal")(keys=[key], args=[token])
