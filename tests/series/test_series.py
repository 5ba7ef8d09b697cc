"""tricklab.server.series against a private, real redis-server; oracles are brute-force numpy."""

import asyncio
import math
import shutil

import numpy as np
import pytest
import redis
from support import RedisServer, free_port

from tricklab.server import series
from tricklab.server.series import (
    BLOCK,
    SeriesWriter,
    aread_series,
    delete_series,
    read_series,
    series_names,
)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    srv = RedisServer(free_port(), tmp_path_factory.mktemp("series-redis"), aof=False)
    srv.start()
    yield srv.port
    srv.stop()


@pytest.fixture
def r(redis_port):
    client = redis.Redis(port=redis_port)
    client.flushall()
    yield client
    client.close()


def write(r, prefix, name, steps, values, batch=1000):
    w = SeriesWriter(r, prefix)
    w.load()
    for i in range(0, len(steps), batch):
        pipe = r.pipeline(transaction=False)
        w.add(pipe, name, steps[i : i + batch], values[i : i + batch])
        pipe.execute()
    return w


def as_arrays(s):
    v = np.array([np.nan if x is None else x for x in s["value"]], dtype=np.float64)
    return np.array(s["step"], dtype=np.int64), v


# --- brute-force oracle: same min/max rule as documented, computed point by point ---


def oracle_min(steps, values):
    finite = ~np.isnan(values)
    if not finite.any():
        return int(steps[0]), values[0]
    i = int(np.flatnonzero(finite)[np.argmin(values[finite])])
    return int(steps[i]), values[i]


def oracle_max(steps, values):
    nan = np.isnan(values)
    i = int(np.flatnonzero(nan)[0]) if nan.any() else int(np.argmax(values))
    return int(steps[i]), values[i]


def assert_keeps_extremes(got, steps, values, max_points):
    gs, gv = as_arrays(got)
    assert len(gs) <= max_points
    assert np.all(np.diff(gs) > 0)
    # every returned point is a real stored point
    idx = np.searchsorted(steps, gs)
    assert np.array_equal(steps[idx], gs)
    np.testing.assert_array_equal(np.where(np.isfinite(values[idx]), values[idx], np.nan), gv)
    assert gs[0] == steps[0] and gs[-1] == steps[-1]
    for step, _ in (oracle_min(steps, values), oracle_max(steps, values)):
        assert step in set(gs.tolist())


def test_round_trip_exact(r):
    rng = np.random.default_rng(0)
    steps = np.cumsum(rng.integers(1, 5, 3000))
    values = rng.standard_normal(3000) * 10.0 ** rng.integers(-300, 300, 3000)
    write(r, "job:a:s", "train_loss", steps, values, batch=77)
    got = read_series(r, "job:a:s")
    s = got["series"]["train_loss"]
    assert s["step"] == steps.tolist()
    assert s["value"] == values.tolist()  # bit-exact float64
    assert all(type(x) is int for x in s["step"]) and all(type(x) is float for x in s["value"])
    assert got["next_since"] == int(steps[-1])


def test_since_filtering_and_next_since(r):
    steps = np.arange(0, 20000, 2)  # many blocks, so `since` must use the summaries
    values = np.sin(steps / 100.0)
    write(r, "job:b:s", "lr", steps, values)
    write(r, "job:b:s", "val_acc", np.array([999, 1999]), np.array([0.5, 0.7]))
    for since in [-1, 0, 1, 7, 513, 10001, 19990, 19997, 19998, 50000]:
        got = read_series(r, "job:b:s", since=since)
        s, v = as_arrays(got["series"]["lr"])
        keep = steps > since
        np.testing.assert_array_equal(s, steps[keep])
        np.testing.assert_array_equal(v, values[keep])
        expected_next = max([since, *steps[keep].tolist(), *[x for x in (999, 1999) if x > since]])
        assert got["next_since"] == expected_next
    # polling: nothing new -> next_since stays put
    assert read_series(r, "job:b:s", since=19998)["next_since"] == 19998
    assert read_series(r, "job:b:s", names=["nope"]) == {
        "series": {"nope": {"step": [], "value": []}},
        "next_since": None,
    }


def test_since_with_downsampling(r):
    steps = np.arange(100_000)
    values = np.cos(steps / 777.0) + steps * 1e-6
    write(r, "job:c:s", "train_loss", steps, values, batch=5000)
    for since in [12345, 50_000 - 1, 99_000]:
        got = read_series(r, "job:c:s", since=since, max_points=100)
        keep = steps > since
        assert_keeps_extremes(got["series"]["train_loss"], steps[keep], values[keep], 100)
        assert got["next_since"] == 99_999


def test_resumed_writer_drops_duplicates(r):
    prefix = "job:d:s"
    steps = np.arange(0, 1000)
    values = steps * 0.5
    write(r, prefix, "train_loss", steps[:700], values[:700], batch=100)
    write(r, prefix, "val_acc", np.array([99, 199]), np.array([0.1, 0.2]))
    # a resumed worker restarts from a checkpoint at step 500 and re-sends 500..999
    w = SeriesWriter(r, prefix)
    w.load()
    assert w.last_step("train_loss") == 699 and w.last_step("val_acc") == 199
    pipe = r.pipeline(transaction=False)
    for i in range(500, 1000, 64):
        w.add(pipe, "train_loss", steps[i : i + 64], values[i : i + 64])
    w.add(pipe, "val_acc", [199, 299], [0.25, 0.3])
    pipe.execute()
    got = read_series(r, prefix)["series"]
    assert got["train_loss"]["step"] == steps.tolist()
    assert got["train_loss"]["value"] == values.tolist()
    assert got["val_acc"] == {"step": [99, 199, 299], "value": [0.1, 0.2, 0.3]}
    # summaries written across the resume boundary agree with the raw data
    raw = np.frombuffer(r.get(f"{prefix}:train_loss:r"), series.REC)
    summ = np.frombuffer(r.get(f"{prefix}:train_loss:b"), series.SUMMARY)
    assert len(summ) == len(raw) // BLOCK
    for k, block in enumerate(raw[: len(summ) * BLOCK].reshape(-1, BLOCK)):
        assert summ[k]["first"] == block[0] and summ[k]["last"] == block[-1]


def test_rejects_unordered_steps(r):
    w = SeriesWriter(r, "job:e:s")
    with pytest.raises(ValueError, match="strictly increasing"):
        w.add(r.pipeline(), "lr", [1, 3, 2], [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "n,max_points", [(5000, 100), (5000, 4), (5000, 7), (300, 1000), (301, 300)]
)
def test_downsampling_small_series_raw_path(r, n, max_points):
    rng = np.random.default_rng(n + max_points)
    steps = np.cumsum(rng.integers(1, 3, n))
    values = rng.standard_normal(n)
    write(r, "job:f:s", "train_loss", steps, values)
    got = read_series(r, "job:f:s", max_points=max_points)["series"]["train_loss"]
    if n <= max_points:
        assert got["step"] == steps.tolist()
    else:
        assert_keeps_extremes(got, steps, values, max_points)


def test_downsampling_buckets_match_brute_force(r):
    # raw path (bucket span < summary threshold): per-bucket min/max exactly as brute force
    rng = np.random.default_rng(3)
    n, max_points = 3000, 500
    steps = np.arange(n) * 3
    values = rng.standard_normal(n).round(1)  # ties: the earliest step wins
    write(r, "job:g:s", "x", steps, values)
    got = read_series(r, "job:g:s", max_points=max_points)["series"]["x"]
    nb = (max_points - 2) // 2
    want = {int(steps[0]), int(steps[-1])}
    for b in range(nb):
        lo, hi = -(-b * n // nb), -(-(b + 1) * n // nb)  # indices i with i*nb//n == b
        want.add(oracle_min(steps[lo:hi], values[lo:hi])[0])
        want.add(oracle_max(steps[lo:hi], values[lo:hi])[0])
    assert got["step"] == sorted(want)


def test_summary_level_for_big_series(r):
    rng = np.random.default_rng(7)
    n = 600_000  # 1000 points -> ~1200 raw points per bucket: the summary path
    steps = np.arange(n) + 10
    values = np.cumsum(rng.standard_normal(n))
    values[423_457] = -1e6  # global min inside a block
    values[BLOCK * 700] = 1e6  # global max at a block start
    write(r, "job:h:s", "train_loss", steps, values, batch=8192)
    calls = []
    real = r.pipeline

    def counting_pipeline(*a, **k):
        p = real(*a, **k)
        orig = p.execute

        def execute(*ea, **ek):
            calls.append([c[0] for c in p.command_stack])
            return orig(*ea, **ek)

        p.execute = execute
        return p

    r.pipeline = counting_pipeline
    try:
        got = read_series(r, "job:h:s", max_points=1000)
    finally:
        del r.pipeline
    assert_keeps_extremes(got["series"]["train_loss"], steps, values, 1000)
    assert len(got["series"]["train_loss"]["step"]) > 900  # buckets really are filled
    # only the tail and the summary were read, never the raw string as a whole
    fetched = [c for round_ in calls for c in round_]
    assert len(calls) <= 3
    assert not any(c[0] == "GETRANGE" and c[2] == 0 for c in fetched)


def test_nan_and_inf(r):
    steps = np.arange(2000)
    values = np.linspace(2.0, 1.0, 2000)
    values[1500:] = np.nan  # diverged
    values[10] = np.inf
    values[11] = -np.inf
    write(r, "job:i:s", "train_loss", steps, values)
    got = read_series(r, "job:i:s")["series"]["train_loss"]
    assert got["value"][10] is None and got["value"][11] is None and got["value"][1999] is None
    assert got["value"][:10] == values[:10].tolist()
    raw = np.frombuffer(r.get("job:i:s:train_loss:r"), series.REC)
    assert np.isnan(raw["value"][1500]) and raw["value"][10] == np.inf  # stored as-is
    small = read_series(r, "job:i:s", max_points=20)["series"]["train_loss"]
    assert 1500 in small["step"]  # the first NaN (divergence) survives downsampling
    assert_keeps_extremes(small, steps, values, 20)


def test_names_and_delete(r):
    w = SeriesWriter(r, "job:j:s")
    pipe = r.pipeline()
    w.add(pipe, "val_loss", [1], [1.0])
    w.add(pipe, "lr", [0, 1], [0.1, 0.2])
    pipe.execute()
    write(r, "job:other:s", "lr", np.arange(10), np.ones(10))
    assert series_names(r, "job:j:s") == ["lr", "val_loss"]
    assert list(read_series(r, "job:j:s")["series"]) == ["lr", "val_loss"]
    delete_series(r, "job:j:s")
    assert series_names(r, "job:j:s") == []
    assert r.keys("job:j:s*") == []
    assert read_series(r, "job:j:s") == {"series": {}, "next_since": None}
    assert series_names(r, "job:other:s") == ["lr"]


def test_decoding_client_is_refused(redis_port):
    client = redis.Redis(port=redis_port, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        read_series(client, "job:x:s")


def test_async_reader_matches_sync(r, redis_port):
    import redis.asyncio as aredis

    steps = np.arange(50_000)
    values = np.sin(steps / 50.0)
    write(r, "job:k:s", "lr", steps, values, batch=3000)

    async def go():
        client = aredis.Redis(port=redis_port)
        try:
            return await aread_series(client, "job:k:s", since=100, max_points=300)
        finally:
            await client.aclose()

    assert asyncio.run(go()) == read_series(r, "job:k:s", since=100, max_points=300)


def test_missing_summary_is_repaired_on_load(r):
    steps = np.arange(5 * BLOCK + 3)
    values = steps * 2.0
    write(r, "job:l:s", "lr", steps, values)
    r.setrange("job:l:s:lr:b", 0, b"")  # noop; then simulate a crash that lost the summaries
    r.delete("job:l:s:lr:b")
    SeriesWriter(r, "job:l:s").load()
    summ = np.frombuffer(r.get("job:l:s:lr:b"), series.SUMMARY)
    assert len(summ) == 5
    assert [int(x) for x in summ["max"]["step"]] == [(k + 1) * BLOCK - 1 for k in range(5)]
    assert not math.isnan(summ["min"]["value"][0])
