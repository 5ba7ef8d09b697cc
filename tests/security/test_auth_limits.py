"""Failed authentications are limited per client address and per key id (api/auth.py).

A real API (TRICKLAB_AUTH=required) on its own Redis database with low limits. Client
addresses are told apart the way a deployment behind a local proxy does: uvicorn takes
X-Forwarded-For from a trusted peer (127.0.0.1 by default), so each test guesses from
addresses of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from support import assert_error, launch_api

from tricklab.server.apikeys import KeyRing
from tricklab.server.connection import connect

DB = 13
ADDR_BURST, ADDR_PER_MIN = 8, 6  # one token back every 10 s: nothing refills during a test
KEY_BURST, KEY_PER_MIN = 3, 6


@pytest.fixture(scope="module")
def limited(redis_server, tmp_path_factory) -> Iterator[dict]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        DB,
        "auth-limits-api",
        TRICKLAB_AUTH="required",
        TRICKLAB_AUTH_FAILURES_BURST_ADDR=str(ADDR_BURST),
        TRICKLAB_AUTH_FAILURES_PER_MIN_ADDR=str(ADDR_PER_MIN),
        TRICKLAB_AUTH_FAILURES_BURST_KEY=str(KEY_BURST),
        TRICKLAB_AUTH_FAILURES_PER_MIN_KEY=str(KEY_PER_MIN),
    )
    ring = KeyRing(connect(p.redis_url), "tl")
    key, rec = ring.create("owner", "tenant-a")
    with httpx.Client(base_url=p.url, timeout=30) as c:
        yield {"client": c, "key": key, "key_id": rec.id}
    p.proc.stop()


def get(c: httpx.Client, addr: str, key: str | None) -> httpx.Response:
    headers = {"X-Forwarded-For": addr}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return c.get("/jobs", headers=headers)


def wrong_secret(key_id: str) -> str:
    return f"tl_{key_id}_{secrets.token_hex(24)}"


def test_an_address_that_keeps_failing_is_locked_out_even_with_a_valid_key(limited):
    c, key = limited["client"], limited["key"]
    addr = "10.0.1.1"
    for _ in range(ADDR_BURST):  # unknown ids, and garbage: all failures of this address
        assert_error(get(c, addr, wrong_secret(secrets.token_hex(6))), 401, "unauthorized")
    r = get(c, addr, "tl_not-even-a-key")
    err = assert_error(r, 429, "too_many_auth_failures")
    assert int(r.headers["Retry-After"]) >= 1
    assert addr in err["message"] and "auth_failures_burst_addr" in err["message"]
    assert err["details"] == {
        "limit": "auth_failures_per_min_addr",
        "per_min": ADDR_PER_MIN,
        "burst": ADDR_BURST,
    }
    # locked out: the right key from this address is refused too (as GitHub does) ...
    assert_error(get(c, addr, key), 429, "too_many_auth_failures")
    # ... and only this address: the key's owner elsewhere is not
    assert get(c, "10.0.1.2", key).status_code == 200


def test_wrong_secrets_for_one_key_id_are_limited_and_the_right_one_still_passes(limited):
    c, key, key_id = limited["client"], limited["key"], limited["key_id"]
    # each guess from another address: only the key id's bucket runs out
    for i in range(KEY_BURST):
        assert_error(get(c, f"10.0.2.{i}", wrong_secret(key_id)), 401, "unauthorized")
    r = get(c, "10.0.2.100", wrong_secret(key_id))
    err = assert_error(r, 429, "too_many_auth_failures")
    assert int(r.headers["Retry-After"]) >= 1
    assert key_id in err["message"] and "auth_failures_burst_key" in err["message"]
    assert err["details"]["limit"] == "auth_failures_per_min_key"
    # key ids are not secret: the lock must not let anyone lock the owner out
    assert get(c, "10.0.2.101", key).status_code == 200
    # another key id is not affected
    assert_error(get(c, "10.0.2.102", wrong_secret(secrets.token_hex(6))), 401, "unauthorized")


def test_requests_without_a_key_and_good_keys_are_not_counted(limited):
    c, key = limited["client"], limited["key"]
    addr = "10.0.3.1"
    for _ in range(3 * ADDR_BURST):
        assert_error(get(c, addr, None), 401, "unauthorized")  # guesses nothing
        assert get(c, addr, key).status_code == 200
    assert_error(get(c, addr, wrong_secret(secrets.token_hex(6))), 401, "unauthorized")
