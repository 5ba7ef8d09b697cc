"""Curves, planned vs actual lr, and the SSE event stream, with jobs driven through the Store."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from support import assert_error, locs

from tricklab.server.series import SeriesWriter
from tricks.schedules import lr_curve
from tricks.spec import JobSpec


def write_series(api, job_id: str, series: dict[str, tuple[list[int], list[float]]]) -> None:
    r = api.bytes_redis()
    w = SeriesWriter(r, api.store.series_prefix(job_id))
    w.load()
    pipe = r.pipeline(transaction=False)
    for name, (steps, values) in series.items():
        w.add(pipe, name, steps, values)
    pipe.execute()


def test_curves_return_the_series_written(api, client):
    job = api.create_job(client)
    steps = list(range(0, 66, 2))
    write_series(
        api,
        job["id"],
        {
            "train_loss": (steps, [2.0 / (1 + s) for s in steps]),
            "val_acc": ([21, 43, 65], [0.5, 0.7, 0.8]),
        },
    )
    got = client.get(f"/jobs/{job['id']}/curves").json()
    assert set(got["series"]) == {"train_loss", "val_acc"}
    assert got["series"]["val_acc"] == {"step": [21, 43, 65], "value": [0.5, 0.7, 0.8]}
    assert got["series"]["train_loss"]["step"] == steps
    assert got["next_since"] == 64 + 1

    some = client.get(f"/jobs/{job['id']}/curves", params={"metrics": "val_acc,nope", "since": 21})
    body = some.json()
    assert body["series"]["val_acc"] == {"step": [43, 65], "value": [0.7, 0.8]}
    assert body["series"]["nope"] == {"step": [], "value": []}

    small = client.get(
        f"/jobs/{job['id']}/curves", params={"metrics": "train_loss", "max_points": 6}
    ).json()["series"]["train_loss"]
    assert len(small["step"]) <= 6 and small["step"][0] == 0 and small["step"][-1] == 64
    assert max(small["value"]) == 2.0


@pytest.mark.parametrize(
    "params, loc",
    [
        ({"max_points": 1}, ["query", "max_points"]),
        ({"max_points": 100_001}, ["query", "max_points"]),
        ({"since": "soon"}, ["query", "since"]),
        ({"metrics": "val_acc,bad name!"}, ["query", "metrics"]),
    ],
)
def test_bad_curve_parameters_are_422(api, client, params, loc):
    job = api.create_job(client)
    err = assert_error(client.get(f"/jobs/{job['id']}/curves", params=params), 422)
    assert locs(err) == [loc]


def test_lr_gives_planned_and_actual(api, client):
    spec = {
        "data": {"dataset": "digits"},
        "optimizer": {"lr": 0.2},
        "schedule": {"warmup": {"epochs": 1}, "decay": {"kind": "cosine", "min_lr": 0.01}},
        "training": {"epochs": 4},
    }
    job = client.post("/jobs", json=spec).json()
    want = lr_curve(
        lr0=0.2, schedule=JobSpec.model_validate(spec).schedule, steps_per_epoch=22, epochs=4
    )
    write_series(api, job["id"], {"lr": ([0, 10, 20], want[[0, 10, 20]].tolist())})
    got = client.get(f"/jobs/{job['id']}/lr").json()
    assert got["planned"]["step"] == list(range(88))
    assert got["planned"]["lr"] == pytest.approx(want.tolist())
    assert got["actual"] == {"step": [0, 10, 20], "lr": pytest.approx(want[[0, 10, 20]].tolist())}
    few = client.get(f"/jobs/{job['id']}/lr", params={"max_points": 10}).json()["planned"]
    assert len(few["step"]) <= 10 and few["step"][0] == 0 and few["step"][-1] == 87
    assert int(want.argmax()) in few["step"] and int(want.argmin()) in few["step"]


def read_sse(resp, limit: int = 200) -> list[dict]:
    """Parse an SSE response until the server closes it."""
    events, cur = [], {}
    for line in resp.iter_lines():
        if line == "":
            if "event" in cur:
                events.append(cur)
            cur = {}
            if len(events) >= limit:
                break
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        cur[key] = json.loads(value) if key == "data" else value
    return events


def test_events_stream_status_and_progress_then_close_on_terminal(api, client):
    job = api.create_job(client)

    def drive():
        a = api.run_job(job["id"])
        api.store.heartbeat(
            job["id"],
            a,
            lease_s=10,
            progress={"step": 10, "total_steps": 66},
            metrics={"train_loss": 1.0},
        )
        time.sleep(0.2)  # the job runs a moment: its progress streams before it finishes
        api.store.finish(job["id"], a, "succeeded", result={"steps": 66})

    t = threading.Thread(target=drive)
    started = time.monotonic()
    with client.stream("GET", f"/jobs/{job['id']}/events", timeout=20) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        t.start()  # the stream is open: what the job does from here on arrives live
        events = read_sse(resp)
    t.join()
    assert time.monotonic() - started < 10  # closed by the server on the terminal status
    kinds = [e["event"] for e in events]
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert "progress" in kinds and "metrics" in kinds
    assert kinds[-1] == "status" and all(e["id"] for e in events)
    progress = next(e for e in events if e["event"] == "progress")
    assert progress["data"]["step"] == 10

    # A finished job replays and closes; resuming after the last event says 204 (do not reconnect).
    with client.stream("GET", f"/jobs/{job['id']}/events") as resp:
        assert [e["id"] for e in read_sse(resp)] == [e["id"] for e in events]
    with client.stream(
        "GET", f"/jobs/{job['id']}/events", headers={"Last-Event-ID": events[1]["id"]}
    ) as resp:
        assert [e["id"] for e in read_sse(resp)] == [e["id"] for e in events[2:]]
    r = client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": events[-1]["id"]})
    assert r.status_code == 204
    err = assert_error(
        client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "yesterday"}), 422
    )
    assert locs(err) == [["header", "Last-Event-ID"]]


def test_events_stream_ends_when_a_queued_job_is_cancelled(api, client):
    job = api.create_job(client)
    # its own client: an httpx.Client is not to be shared with the streaming thread
    cancel = threading.Thread(target=httpx.post, args=(f"{api.url}/jobs/{job['id']}/cancel",))
    with client.stream("GET", f"/jobs/{job['id']}/events", timeout=20) as resp:
        cancel.start()  # once the stream is open
        events = read_sse(resp)
    cancel.join()
    assert [e["data"]["status"] for e in events] == ["queued", "cancelled"]


def test_many_open_event_streams_do_not_starve_other_requests(api, client):
    """Each viewer of a job page holds an SSE stream open. Sixty of them (more than the
    40 threads of the API's pool) must not stop sync routes such as GET /jobs."""
    job = api.create_job(client)  # stays queued: no worker, so every stream stays open
    opened = threading.Barrier(61)
    stop = threading.Event()

    def viewer() -> None:
        with httpx.Client(base_url=api.url, timeout=30) as c:
            with c.stream("GET", f"/jobs/{job['id']}/events") as r:
                assert r.status_code == 200
                lines = r.iter_lines()
                next(lines)  # "retry: ..." — the stream is open server-side
                opened.wait(30)
                stop.wait(30)

    threads = [threading.Thread(target=viewer, daemon=True) for _ in range(60)]
    for t in threads:
        t.start()
    try:
        opened.wait(30)
        t0 = time.monotonic()
        for _ in range(5):
            assert client.get("/jobs", params={"limit": 5}).status_code == 200  # a sync route
            assert client.get(f"/jobs/{job['id']}/curves").status_code == 200
        assert time.monotonic() - t0 < 5, "requests waited behind open event streams"
    finally:
        stop.set()
        for t in threads:
            t.join(10)
