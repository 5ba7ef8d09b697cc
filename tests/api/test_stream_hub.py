"""The stream hub (api/stream_hub.py) in-process against a real Redis: one reader fans a
job's events out to its viewers; a viewer that joins late or falls behind still gets
every event exactly once, in order; a job that ends without an event a viewer could
see (here: its status set directly) still ends the viewer's stream."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from api import stream_hub
from api.stream_hub import StreamHub
from tricklab.server.connection import connect, connect_async
from tricklab.server.keyspace import Keyspace

DB = 12


def add_event(r, keys: Keyspace, job_id: str, n: int) -> str:
    return r.xadd(keys.job_events(job_id), {"type": "progress", "data": json.dumps({"n": n})})


async def take(agen, n: int, timeout: float = 30) -> list[int]:
    """The next n events' "n" (empty idle batches skipped)."""
    got: list[int] = []
    async with asyncio.timeout(timeout):
        while len(got) < n:
            got += [data["n"] for _eid, _kind, data in await agen.__anext__()]
    return got


async def rest(agen, timeout: float = 30) -> list[int]:
    """Everything until the viewer's stream ends."""
    got: list[int] = []
    async with asyncio.timeout(timeout):
        async for batch in agen:
            got += [data["n"] for _eid, _kind, data in batch]
    return got


def test_late_and_lagging_viewers_get_every_event_once_in_order(redis_server, monkeypatch):
    monkeypatch.setattr(stream_hub, "MAX_QUEUED", 3)  # a viewer lags after 3 unread batches
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    r = connect(url)
    r.flushdb()
    keys = Keyspace("tl")
    r.hset(keys.job("j1"), "status", "running")
    for n in range(5):
        add_event(r, keys, "j1", n)

    async def main() -> None:
        hub, ar = StreamHub(url, keys), connect_async(url)
        try:
            a = hub.follow(ar, "j1", "0-0", 0.1)
            assert await take(a, 5) == [0, 1, 2, 3, 4]  # read by the hub, from 0-0
            assert hub.cursors["j1"] != "0-0"
            b = hub.follow(ar, "j1", "0-0", 0.1)  # joins after the hub passed all five
            assert await take(b, 5) == [0, 1, 2, 3, 4]
            b_at = hub.follow(ar, "j1", r.xrange(keys.job_events("j1"))[2][0], 0.1)
            assert await take(b_at, 2) == [3, 4]  # Last-Event-ID resume: after the 3rd
            await b_at.aclose()
            # b reads nothing now while 20 events come one at a time: its queue overflows
            a_got = []
            for n in range(5, 25):
                add_event(r, keys, "j1", n)
                a_got += await take(a, 1)
            assert a_got == list(range(5, 25))
            viewer_b = next(v for v in hub.viewers["j1"] if v.lagged)
            assert viewer_b.queue.qsize() == 3
            assert await take(b, 20) == list(range(5, 25))  # each once, in order
            # the job ends with no event: both viewers drain and stop
            add_event(r, keys, "j1", 25)
            r.hset(keys.job("j1"), "status", "succeeded")
            assert await rest(a) == [25]
            assert await rest(b) == [25]
            assert hub.viewers == {} and hub.cursors == {}
        finally:
            await hub.close()
            await ar.aclose()

    asyncio.run(main())


def test_one_read_serves_many_jobs_and_a_new_job_is_picked_up_at_once(redis_server, monkeypatch):
    """A job watched while the hub is blocked in its read is seen without waiting out
    the block (the wake stream), and one blocked read serves every watched job."""
    monkeypatch.setattr(stream_hub, "BLOCK_MS", 4000)  # below the client's 5 s socket timeout
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    r = connect(url)
    r.flushdb()
    keys = Keyspace("tl")
    jobs = [f"j{i}" for i in range(50)]
    for j in jobs:
        r.hset(keys.job(j), "status", "running")

    async def main() -> None:
        hub, ar = StreamHub(url, keys), connect_async(url)
        try:
            viewers = [hub.follow(ar, j, "0-0", 5.0) for j in jobs[:-1]]
            first = [asyncio.ensure_future(take(v, 1)) for v in viewers]
            await asyncio.sleep(0.3)  # the hub is now blocked in XREAD on 49 streams
            last = hub.follow(ar, jobs[-1], "0-0", 5.0)
            got_last = asyncio.ensure_future(take(last, 1))
            await asyncio.sleep(0.05)
            add_event(r, keys, jobs[-1], 99)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert await got_last == [99]
            # well under the hub's 4 s block: the wake ended the read that lacked this job
            assert loop.time() - t0 < 2.0
            for i, j in enumerate(jobs[:-1]):
                add_event(r, keys, j, i)
            assert [await f for f in first] == [[i] for i in range(49)]
            assert len(hub.viewers) == 50
            for v in [*viewers, last]:
                await v.aclose()
            assert hub.viewers == {}
        finally:
            await hub.close()
            await ar.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("cap", [2])
def test_stream_slots_are_capped_and_given_back(redis_server, cap):
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    connect(url).flushdb()

    async def main() -> None:
        hub, ar = StreamHub(url, Keyspace("tl")), connect_async(url)
        other = StreamHub(url, Keyspace("tl"))  # a second API process
        try:
            t1, n1 = await hub.open_slot(ar, "k:a", cap)
            t2, n2 = await other.open_slot(ar, "k:a", cap)
            assert (n1, n2) == (1, 2) and t1 and t2
            assert await hub.open_slot(ar, "k:a", cap) == (None, 2)  # across processes
            assert (await hub.open_slot(ar, "k:b", cap))[0]  # per caller
            hub.close_slot("k:a", t1)
            hub.close_slot("k:a", t1)  # idempotent
            async with asyncio.timeout(10):
                while (await hub.open_slot(ar, "k:a", cap))[0] is None:
                    await asyncio.sleep(0.05)
        finally:
            await hub.close()
            await other.close()
            await ar.aclose()

    asyncio.run(main())


def test_a_full_pool_raises_pool_exhausted_and_a_dead_redis_does_not(redis_server):
    """The API's pool (tricklab.server.connection): a command that finds every connection
    busy past the pool's timeout raises PoolExhausted (its own 503), while a Redis that
    refuses connections stays a plain ConnectionError (503 redis_unavailable)."""
    from support import free_port

    from tricklab.server.connection import PoolExhausted

    async def main() -> None:
        url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
        ar = connect_async(url, max_connections=1, pool_timeout_s=0.2)
        held = asyncio.ensure_future(ar.blpop(["tl:nothing"], timeout=1))  # the one connection
        await asyncio.sleep(0.1)
        with pytest.raises(PoolExhausted, match="all 1 connections"):
            await ar.ping()
        await held
        assert await ar.ping()  # given back: served again
        await ar.aclose()
        dead = connect_async(f"redis://127.0.0.1:{free_port()}/0", pool_timeout_s=0.2)
        with pytest.raises(redis.ConnectionError) as e:
            await dead.ping()
        assert not isinstance(e.value, PoolExhausted)
        await dead.aclose()

    asyncio.run(main())


def test_viewers_get_an_error_when_redis_is_lost(tmp_path):
    """Redis killed under open streams: every viewer's stream ends with StreamError (the
    route sends it as an SSE `error` event), none hangs; the hub serves new viewers once
    Redis is back."""
    from support import RedisServer, free_port

    from api.stream_hub import StreamError

    srv = RedisServer(port=free_port(), dir=tmp_path, aof=False)
    srv.start()
    url = f"redis://127.0.0.1:{srv.port}/0"
    keys = Keyspace("tl")
    try:
        r = connect(url)
        for j in ("j1", "j2"):
            r.hset(keys.job(j), "status", "running")
            add_event(r, keys, j, 0)

        async def main() -> None:
            hub, ar = StreamHub(url, keys), connect_async(url)
            viewers = [hub.follow(ar, j, "0-0", 0.2) for j in ("j1", "j1", "j2")]
            for v in viewers:
                assert await take(v, 1) == [0]
            srv.kill()
            for v in viewers:
                with pytest.raises(StreamError):
                    await rest(v, 20)
            assert hub.viewers == {}
            srv.start()
            connect(url).hset(keys.job("j3"), "status", "running")
            add_event(connect(url), keys, "j3", 7)
            again = hub.follow(ar, "j3", "0-0", 0.2)
            assert await take(again, 1, 20) == [7]
            await again.aclose()
            await hub.close()
            await ar.aclose()

        asyncio.run(main())
    finally:
        srv.stop()
