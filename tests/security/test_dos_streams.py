"""One tenant holding hundreds of event streams must not take the API from another.

A real API (TRICKLAB_AUTH=required) on a private Redis database, a small async Redis
pool (20) and a low per-key stream cap (300): tenant A opens 300 real SSE connections
(raw sockets), many more than the pool has connections. Tenant B's GET /jobs/{id}
still answers 200, A's 301st stream is 429 naming the cap, the streams still deliver
(a cancel reaches every viewer of that job) and closed streams give their slots back.
A pool that is really exhausted answers its own 503, not "Redis is unreachable".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from support import assert_error, launch_api, minimal_spec, wait_for
from support.sse_flood import open_many, open_stream

from tricklab.server.apikeys import KeyRing
from tricklab.server.connection import connect

DB = 11
CAP = 300
POOL = 20  # far below CAP: a stream that held a connection while it waits would starve it
JOBS = 30
POOL_TIMEOUT_S = 1.0  # the pause below (3 s) outlasts it


@pytest.fixture(scope="module")
def dos(redis_server, tmp_path_factory) -> Iterator[dict]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        DB,
        "dos-api",
        TRICKLAB_AUTH="required",
        TRICKLAB_MAX_STREAMS_PER_KEY=str(CAP),
        TRICKLAB_REDIS_POOL_SIZE=str(POOL),
        TRICKLAB_REDIS_POOL_TIMEOUT_S=str(POOL_TIMEOUT_S),
    )
    ring = KeyRing(connect(p.redis_url), "tl")
    fast = {"rate_limit_per_s": 10_000, "rate_limit_burst": 10_000}  # A opens 300 at once
    key_a, _ = ring.create("a", "tenant-a", fast)
    key_b, _ = ring.create("b", "tenant-b")
    yield {"url": p.url, "redis_url": p.redis_url, "a": key_a, "b": key_b, "proc": p.proc}
    p.proc.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_jobs(url: str, key: str, n: int) -> list[str]:
    with httpx.Client(base_url=url, headers=auth(key), timeout=30) as c:
        out = []
        for _ in range(n):
            r = c.post("/jobs", json=minimal_spec())
            assert r.status_code == 201, r.text
            out.append(r.json()["id"])  # no worker: each stays queued, its stream stays open
        return out


def test_many_streams_of_one_tenant_leave_the_api_to_others(dos):
    url = dos["url"]
    jobs_a = make_jobs(url, dos["a"], JOBS)
    (job_b,) = make_jobs(url, dos["b"], 1)
    paths = [f"/jobs/{jobs_a[i % JOBS]}/events" for i in range(CAP)]

    async def main() -> None:
        streams = await open_many(url, paths, auth(dos["a"]), parallel=20)
        try:
            failed = [s for s in streams if isinstance(s, BaseException) or s.status != 200]
            assert not failed, failed[:3]
            async with (
                httpx.AsyncClient(base_url=url, headers=auth(dos["b"]), timeout=30) as b,
                httpx.AsyncClient(base_url=url, headers=auth(dos["a"]), timeout=30) as a,
            ):
                # another tenant, and the streaming tenant's own reads, are served
                lat = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    r = await b.get(f"/jobs/{job_b}")
                    lat.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
                assert (await a.get(f"/jobs/{jobs_a[0]}")).status_code == 200
                print(f"B's GET /jobs/{{id}} with {CAP} streams open: max {max(lat) * 1000:.0f} ms")

                # one stream past the cap: 429 naming the cap and its setting
                extra = await a.get(f"/jobs/{jobs_a[0]}/events")
                err = assert_error(extra, 429, "too_many_streams")
                assert "max_streams_per_key" in err["message"]
                assert "TRICKLAB_MAX_STREAMS_PER_KEY" in err["message"]
                assert f"{CAP}" in err["message"] and int(extra.headers["Retry-After"]) >= 1
                assert err["details"]["max_streams_per_key"] == CAP
                # the cap is per key: B still streams
                sb = await open_stream(url, f"/jobs/{job_b}/events", auth(dos["b"]))
                assert sb.status == 200
                sb.close()

                # the streams still deliver: a cancel reaches every viewer of that job, and
                # the server ends those streams (terminal status), not the others
                assert (await a.post(f"/jobs/{jobs_a[0]}/cancel")).status_code == 202
            viewers = [s for s, p in zip(streams, paths, strict=True) if jobs_a[0] in p]
            assert len(viewers) == CAP // JOBS
            for s in viewers:
                assert await s.read_until(b'"status":"cancelled"', 30), bytes(s.body[-300:])
                assert not await s.read_until(b"\x00never", 30)  # then the server closes it
            assert not streams[1].reader.at_eof()
        finally:
            for s in streams:
                if not isinstance(s, BaseException):
                    s.close()

        # closed streams give their slots back: A can open streams again
        async def reopen() -> bool:
            s = await open_stream(url, f"/jobs/{jobs_a[1]}/events", auth(dos["a"]))
            s.close()
            return s.status == 200

        deadline = time.monotonic() + 30
        while not await reopen():
            assert time.monotonic() < deadline, "slots were not given back"
            await asyncio.sleep(0.2)

    asyncio.run(main())


def test_an_exhausted_pool_is_its_own_503_not_redis_unreachable(dos, redis_server):
    """Redis answers slowly (CLIENT PAUSE: every command waits 3 s) while 3x the pool's
    connections are asked for: the ones that find no free connection within the pool's
    timeout answer 503 redis_pool_exhausted with Retry-After; none says Redis is down."""
    (job_b,) = make_jobs(dos["url"], dos["b"], 1)

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=dos["url"],
            headers=auth(dos["b"]),
            timeout=30,
            limits=httpx.Limits(max_connections=3 * POOL),
        ) as b:
            redis_server.client().execute_command("CLIENT", "PAUSE", "3000", "ALL")
            return await asyncio.gather(*(b.get(f"/jobs/{job_b}") for _ in range(3 * POOL)))

    got = asyncio.run(main())
    codes = sorted({r.status_code for r in got})
    assert set(codes) <= {200, 503}, codes
    full = [r for r in got if r.status_code == 503]
    assert full, "no request found the pool full"
    for r in full:
        err = assert_error(r, 503, "redis_pool_exhausted")
        assert "connection pool is exhausted" in err["message"]
        assert r.headers["Retry-After"] == "1"
    with httpx.Client(base_url=dos["url"], headers=auth(dos["b"]), timeout=30) as c:
        wait_for(lambda: c.get(f"/jobs/{job_b}").status_code == 200, 30, what="the pool back")
