"""One reader per API process for every open event stream (GET /jobs/{id}/events).

A viewer waiting in its own XREAD BLOCK holds one of the API's pooled Redis connections
for as long as it waits, so ~100 viewers (the pool's size) used to starve every other
request. Here ONE background task holds ONE connection and blocks in a single XREAD over
the event streams of every job someone watches, then fans each batch out to per-viewer
asyncio queues; a viewer waits on its queue and holds no connection.

How a viewer stays exact (no gap, no repeat) when it joins late or falls behind: the hub
keeps a cursor per watched job and hands a batch to every viewer registered when the
batch is handed out. A viewer joining at `last` reads (last, cursor] itself with short
XRANGE pages through the API's pool, then takes the hub's batches (all after the cursor),
skipping ids it already has. A viewer whose queue overflows (a client that does not
read) is marked lagged and rejoins the same way once its queue is drained.

When the watched set grows, the hub's XREAD is woken at once by an XADD to a private
"wake" stream that it also reads (plain Redis, no CLIENT UNBLOCK). Every
FINISHED_EVERY_S the hub checks in one pipeline which watched jobs are terminal or
gone, so a viewer whose job ended without a terminal status event it could see drains
and stops; on a Redis error every viewer gets an error and its stream ends.

Open-stream slots per caller (`open_slot`) are a Redis sorted set of leases (see
lua/stream_open.lua), so the cap holds across API processes and a process that dies
gives its slots back when their leases end; this process renews the leases of the
streams it holds every RENEW_EVERY_S.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from typing import Any

import redis

from tricklab.server import events as job_events
from tricklab.server import scripts
from tricklab.server.connection import connect_async
from tricklab.server.keyspace import Keyspace

log = logging.getLogger("tricklab.api")

BLOCK_MS = 1000  # the hub's XREAD BLOCK; below the client's 5 s socket timeout
COUNT = 500  # entries per stream per read (XREAD COUNT, XRANGE page)
MAX_QUEUED = 200  # batches waiting for one viewer before it is marked lagged
FINISHED_EVERY_S = 2.0
SLOT_LEASE_S = 60.0
RENEW_EVERY_S = 20.0
RETRY_AFTER_S = 0.5  # pause after a Redis error before the hub reads again


class StreamError(Exception):
    """The hub lost Redis: the viewer's stream ends with an error event."""


def _reraise_if_cancelled() -> None:
    """redis-py can turn a cancellation that lands mid-command into a ConnectionError;
    a task being cancelled must still stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _sid(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class _Viewer:
    """One open stream: the hub puts ("events", batch) / ("finished",) / ("error", msg)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.lagged = False

    def put(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == "events":
            if self.lagged:
                return
            if self.queue.qsize() >= MAX_QUEUED:
                self.lagged = True  # it rejoins from its own last id once drained
                return
        self.queue.put_nowait(msg)


class StreamHub:
    """The per-process reader. Built lazily on the app's event loop (api/deps.py)."""

    def __init__(self, redis_url: str, keys: Keyspace) -> None:
        self.keys = keys
        # Its own small pool: one connection blocks in XREAD, one wakes it / renews leases.
        # Never the API's pool, so a busy API pool cannot stall the streams and vice versa.
        self.ar = connect_async(redis_url, max_connections=3, pool_timeout_s=5.0)
        self.hub_id = secrets.token_hex(8)
        self.wake_key = keys.stream_hub_wake(self.hub_id)
        self.wake_cursor = "0-0"
        self.cursors: dict[str, str] = {}  # job id -> the last entry id the hub read
        self.viewers: dict[str, set[_Viewer]] = {}
        self.slots: dict[str, set[str]] = {}  # caller's zset key -> tokens this process holds
        self._to_release: list[tuple[str, str]] = []
        self._grew = asyncio.Event()
        self._reading = False
        self._wake_sent = False
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._open_script = scripts.register(self.ar, "stream_open")
        self._renew_script = scripts.register(self.ar, "stream_renew")

    # ------------------------------------------------------------------ viewers
    @property
    def watched(self) -> int:
        return sum(len(v) for v in self.viewers.values())

    async def follow(
        self, ar: Any, job_id: str, last: str, idle_s: float
    ) -> AsyncGenerator[list, None]:
        """Batches of the job's events after `last`, as they come; an empty batch after each
        idle_s without one (for keep-alives and disconnect checks). Returns once the job is
        terminal (or gone) and drained; raises StreamError when Redis is lost. `ar` (the
        API's pool) serves only short catch-up reads. Use with contextlib.aclosing."""
        viewer = _Viewer(job_id)
        upto = self._join(viewer, last)
        try:
            while True:
                while upto is not None:  # the gap (last, upto] the hub had passed
                    evs = await job_events.read_range(ar, self.keys, job_id, last, upto, COUNT)
                    if evs:
                        last = evs[-1][0]
                        yield evs
                    if len(evs) < COUNT:
                        upto = None
                try:
                    msg = await asyncio.wait_for(viewer.queue.get(), idle_s)
                except TimeoutError:
                    yield []
                    continue
                if msg[0] == "events":
                    at = _sid(last)
                    evs = [e for e in msg[1] if _sid(e[0]) > at]
                    if evs:
                        last = evs[-1][0]
                        yield evs
                elif msg[0] == "finished":
                    while evs := await job_events.read(ar, self.keys, job_id, last, None, COUNT):
                        last = evs[-1][0]
                        yield evs
                    return
                else:
                    raise StreamError(msg[1])
                if viewer.lagged and viewer.queue.empty():
                    self._leave(viewer)
                    viewer.lagged = False
                    upto = self._join(viewer, last)
        finally:
            self._leave(viewer)

    def _join(self, viewer: _Viewer, last: str) -> str | None:
        """Register the viewer; the id it must catch up to by itself (None: nothing)."""
        job = viewer.job_id
        cursor = self.cursors.get(job)
        self.viewers.setdefault(job, set()).add(viewer)
        if cursor is None:
            self.cursors[job] = last  # a newly watched job: the hub reads from here
            self._grew.set()
            self._wake()
            return None
        return cursor if _sid(cursor) > _sid(last) else None

    def _leave(self, viewer: _Viewer) -> None:
        """Synchronous, so it also runs from a cancelled stream."""
        vs = self.viewers.get(viewer.job_id)
        if vs is None:
            return
        vs.discard(viewer)
        if not vs:
            del self.viewers[viewer.job_id]
            self.cursors.pop(viewer.job_id, None)

    # --------------------------------------------------------------- the reader
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _wake(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
            return
        if self._reading and not self._wake_sent:
            self._wake_sent = True
            self._spawn(self._send_wake())

    async def _send_wake(self) -> None:
        try:
            async with self.ar.pipeline(transaction=False) as pipe:
                pipe.xadd(self.wake_key, {"w": "1"}, maxlen=1, approximate=False)
                pipe.expire(self.wake_key, 60)
                await pipe.execute()
        except redis.RedisError as e:  # the read still ends within BLOCK_MS
            log.debug("stream hub: wake failed: %r", e)

    async def _run(self) -> None:
        finished_at = renewed_at = time.monotonic()
        while True:
            _reraise_if_cancelled()  # a cancel redis-py swallowed must not leave us waiting
            if not self.viewers and not self.slots:
                self._grew.clear()
                await self._grew.wait()
            try:
                await self._read_once()
                now = time.monotonic()
                if now - finished_at >= FINISHED_EVERY_S:
                    finished_at = now
                    for job in await job_events.finished(self.ar, self.keys, list(self.viewers)):
                        for v in list(self.viewers.get(job, ())):
                            v.put(("finished",))
                if now - renewed_at >= RENEW_EVERY_S:
                    renewed_at = now
                    await self._renew()
            except (redis.ConnectionError, redis.TimeoutError) as e:
                _reraise_if_cancelled()
                log.warning("stream hub: redis error, ending %d streams: %r", self.watched, e)
                self._fail_all("redis")
                await asyncio.sleep(RETRY_AFTER_S)
            except Exception:
                _reraise_if_cancelled()
                log.exception("stream hub: unexpected error, ending %d streams", self.watched)
                self._fail_all("internal")
                await asyncio.sleep(RETRY_AFTER_S)

    async def _read_once(self) -> None:
        if not self.viewers:
            await asyncio.sleep(BLOCK_MS / 1000)  # only leases to renew
            return
        cursors = dict(self.cursors)
        streams = {self.keys.job_events(j): c for j, c in cursors.items()}
        streams[self.wake_key] = self.wake_cursor
        job_of = {self.keys.job_events(j): j for j in cursors}
        self._reading, self._wake_sent = True, False
        try:
            res = await self.ar.xread(streams, count=COUNT, block=BLOCK_MS)
        finally:
            self._reading = False
        for stream, entries in res or []:
            if not entries:
                continue
            if stream == self.wake_key:
                self.wake_cursor = entries[-1][0]
                continue
            job = job_of[stream]
            if self.cursors.get(job) != cursors[job]:
                # every viewer left while the read was in flight (and maybe a new one came,
                # from its own cursor, which the next read starts at): not for them
                continue
            batch = job_events.decode(entries)
            self.cursors[job] = batch[-1][0]
            for v in list(self.viewers[job]):
                v.put(("events", batch))

    def _fail_all(self, why: str) -> None:
        for vs in self.viewers.values():
            for v in vs:
                v.put(("error", why))
        self.viewers.clear()
        self.cursors.clear()

    # -------------------------------------------------------------------- slots
    async def open_slot(self, ar: Any, caller: str, cap: int) -> tuple[str | None, int]:
        """Take one of the caller's `cap` open-stream slots: (token, open now), or
        (None, open now) when all are taken. Release with `close_slot`."""
        key = self.keys.open_streams(caller)
        token = f"{self.hub_id}:{secrets.token_hex(6)}"
        ok, n = await self._open_script(keys=[key], args=[token, cap, SLOT_LEASE_S], client=ar)
        if int(ok) != 1:
            return None, int(n)
        self.slots.setdefault(key, set()).add(token)
        self._grew.set()  # the reader also renews leases
        self._wake()
        return token, int(n)

    def close_slot(self, caller: str, token: str) -> None:
        """Give a slot back (idempotent; synchronous, so it also runs from a cancelled stream)."""
        key = self.keys.open_streams(caller)
        held = self.slots.get(key)
        if held is None or token not in held:
            return
        held.discard(token)
        if not held:
            del self.slots[key]
        self._to_release.append((key, token))
        if len(self._to_release) == 1:  # else a flush is already on its way
            self._spawn(self._release())

    async def _release(self) -> None:
        """ZREM every slot given back since the last flush, in one pipeline."""
        await asyncio.sleep(0)  # gather the slots that streams ending together give back
        batch, self._to_release = self._to_release, []
        try:
            async with self.ar.pipeline(transaction=False) as pipe:
                for key, token in batch:
                    pipe.zrem(key, token)
                await pipe.execute()
        except redis.RedisError as e:  # their leases end within SLOT_LEASE_S anyway
            log.warning("stream hub: could not give back %d stream slots: %r", len(batch), e)

    async def _renew(self) -> None:
        if not self.slots:
            return
        held = [(key, list(tokens)) for key, tokens in self.slots.items()]
        async with self.ar.pipeline(transaction=False) as pipe:
            for key, tokens in held:
                await self._renew_script(keys=[key], args=[SLOT_LEASE_S, *tokens], client=pipe)
            await pipe.execute()

    async def close(self) -> None:
        """Stop the reader (tests; the app's hub lives as long as its process)."""
        tasks = [t for t in [self._task, *self._side_tasks] if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=5)
            if pending:
                log.warning(
                    "stream hub: %d tasks did not stop on cancel: %s", len(pending), pending
                )
        await self.ar.aclose()
