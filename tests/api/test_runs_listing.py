"""GET /jobs as a runs table (sort by any field path, filters, cursor paging) and PATCH
/jobs/{id} (tags and notes), over real HTTP against real Redis; no worker: jobs are
driven through the Store the way a worker would (claim -> heartbeat -> finish).

Orders are checked against hand-written expectations, not the implementation's own
comparator: ties (and only ties) are ordered by id, newest first.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from support import assert_error, locs, minimal_spec

from tricks.spec import JobSpec

# lr and best val_acc of the 7 jobs of `runs`, in creation order (None: no val_acc yet)
LRS = [0.1, 0.05, 0.1, 0.2, 0.05, 0.3, 0.1]
BEST = [0.9, None, 0.8, 0.9, 0.7, None, 0.95]


def _finish(api, job_id: str, best: float | None, val_loss: float | None = None) -> None:
    a = api.run_job(job_id)
    api.store.heartbeat(
        job_id,
        a,
        lease_s=60,
        metrics={"val_acc": best, "val_loss": val_loss} if best is not None else {},
        best={"val_acc": best, "epoch": 2} if best is not None else None,
    )
    api.store.finish(job_id, a, "succeeded")


@pytest.fixture(scope="module")
def runs(api):
    """7 finished jobs named runs-<uid>-<i>; q=runs-<uid> picks exactly them."""
    uid = uuid.uuid4().hex[:8]
    with api.client() as c:
        ids = []
        for i, (lr, best) in enumerate(zip(LRS, BEST, strict=True)):
            job = api.create_job(
                c, name=f"runs-{uid}-{i}", optimizer={"name": "sgd", "lr": lr, "momentum": 0.9}
            )
            ids.append(job["id"])
            _finish(api, job["id"], best, val_loss=None if best is None else 1 - best)
    return f"runs-{uid}", ids


def page_all(client, limit: int = 3, **params) -> list[str]:
    """Follow next_cursor to the end; the ids in the order the API gave them."""
    seen, cursor, pages = [], None, 0
    while True:
        r = client.get(
            "/jobs", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(body["data"]) <= limit
        seen += [j["id"] for j in body["data"]]
        cursor = body["next_cursor"]
        pages += 1
        assert pages < 50, "paging does not end"
        if cursor is None:
            return seen


def expected(ids: list[str], groups: list[list[int]]) -> list[str]:
    """Hand-ordered groups of equal values; inside a group, newest (largest id) first."""
    return [x for g in groups for x in sorted((ids[i] for i in g), reverse=True)]


@pytest.mark.parametrize(
    "sort, groups",
    [
        # lr 0.05: jobs 1, 4 · 0.1: 0, 2, 6 · 0.2: 3 · 0.3: 5
        ("spec.optimizer.lr", [[1, 4], [0, 2, 6], [3], [5]]),
        ("-spec.optimizer.lr", [[5], [3], [0, 2, 6], [1, 4]]),
        # 0.95: 6 · 0.9: 0, 3 · 0.8: 2 · 0.7: 4 · missing (last either way): 1, 5
        ("-best.val_acc", [[6], [0, 3], [2], [4], [1, 5]]),
        ("best.val_acc", [[4], [2], [0, 3], [6], [1, 5]]),
        # val_loss = 1 - best: the same order as best ascending, reversed
        ("metrics.val_loss", [[6], [0, 3], [2], [4], [1, 5]]),
        ("created_at", [[0], [1], [2], [3], [4], [5], [6]]),
        ("-created_at", [[6], [5], [4], [3], [2], [1], [0]]),
    ],
)
def test_paging_under_a_sort_returns_every_job_once_in_order(client, runs, sort, groups):
    q, ids = runs
    want = expected(ids, groups)
    if sort.endswith("created_at"):  # distinct creation times, in creation order
        want = ids if sort == "created_at" else ids[::-1]
    assert page_all(client, limit=3, sort=sort, q=q) == want
    assert page_all(client, limit=1, sort=sort, q=q) == want
    one = client.get("/jobs", params={"sort": sort, "q": q, "limit": 200}).json()
    assert [j["id"] for j in one["data"]] == want and one["next_cursor"] is None


def test_paging_stays_exact_while_jobs_are_added(api, client, runs):
    q, ids = runs
    want = expected(ids, [[6], [0, 3], [2], [4], [1, 5]])
    first = client.get("/jobs", params={"sort": "-best.val_acc", "q": q, "limit": 3}).json()
    assert [j["id"] for j in first["data"]] == want[:3]
    # a new best (it sorts before the cursor: not on later pages) and a job with no
    # val_acc (after it: on a later page, with the other missing ones, newest first)
    top = api.create_job(client, name=f"{q}-late-top")
    _finish(api, top["id"], 0.99)
    late = api.create_job(client, name=f"{q}-late-none")
    _finish(api, late["id"], None)
    rest, cursor = [], first["next_cursor"]
    while cursor:
        body = client.get(
            "/jobs", params={"sort": "-best.val_acc", "q": q, "limit": 3, "cursor": cursor}
        ).json()
        rest += [j["id"] for j in body["data"]]
        cursor = body["next_cursor"]
    assert top["id"] not in rest
    assert rest == [*want[3:5], *sorted([ids[1], ids[5], late["id"]], reverse=True)]


def test_a_running_jobs_new_best_moves_it_in_the_next_listing(api, client):
    """Active jobs are read again on every listing (only finished ones are kept)."""
    q = f"moving-{uuid.uuid4().hex[:8]}"
    for acc in (0.9, 0.8):
        _finish(api, api.create_job(client, name=f"{q}-{acc}")["id"], acc)
    job = api.create_job(client, name=f"{q}-moving")
    a = api.run_job(job["id"])

    def place() -> int:
        body = client.get("/jobs", params={"sort": "-best.val_acc", "q": q, "limit": 200})
        return [j["id"] for j in body.json()["data"]].index(job["id"])

    assert place() == 2  # no val_acc yet: last
    api.store.heartbeat(job["id"], a, lease_s=60, best={"val_acc": 0.85, "epoch": 0})
    assert place() == 1
    api.store.heartbeat(job["id"], a, lease_s=60, best={"val_acc": 0.999, "epoch": 1})
    assert place() == 0
    api.store.finish(job["id"], a, "succeeded")
    assert place() == 0 and place() == 0


def test_rows_carry_spec_tags_notes_metrics_and_duration(api, client, runs):
    q, ids = runs
    rows = {j["id"]: j for j in client.get("/jobs", params={"q": q, "limit": 200}).json()["data"]}
    assert set(ids) <= set(rows)
    row = rows[ids[6]]
    assert row["spec"]["optimizer"]["lr"] == 0.1
    assert row["best"] == {"val_acc": 0.95, "epoch": 2}
    assert row["metrics"]["val_acc"] == 0.95
    assert row["tags"] == [] and row["notes"] == ""
    rec = api.store.get_job(ids[6])
    span = datetime.fromisoformat(rec["finished_at"]) - datetime.fromisoformat(rec["started_at"])
    assert row["duration_s"] == pytest.approx(span.total_seconds(), abs=1e-3)
    # the fields the dashboard already reads are still there
    assert {"id", "name", "status", "progress", "created_at", "sweep_id"} <= set(row)
    queued = api.create_job(client, name=f"{q}-queued")
    got = client.get(f"/jobs/{queued['id']}").json()
    assert got["duration_s"] is None and got["tags"] == []
    client.post(f"/jobs/{queued['id']}/cancel")


def test_filters_status_q_and_sort_by_duration(api, client, runs):
    q, ids = runs
    running = api.create_job(client, name=f"{q}-running")
    api.run_job(running["id"])
    try:
        only = client.get("/jobs", params={"q": q, "status": "running"}).json()["data"]
        assert [j["id"] for j in only] == [running["id"]]
        # q is a case-insensitive substring of the name
        upper = client.get("/jobs", params={"q": q.upper() + "-3", "limit": 200}).json()["data"]
        assert [j["id"] for j in upper] == [ids[3]]
        # duration_s: queued jobs (none here) and every started job; missing last
        by_dur = page_all(client, sort="-duration_s", q=q, status="succeeded")
        assert set(ids) <= set(by_dur)
    finally:
        api.store.finish(running["id"], 1, "cancelled")


def test_sweep_id_filter_lists_exactly_the_sweeps_children(client):
    body = {
        "name": f"runs-sweep-{uuid.uuid4().hex[:6]}",
        "base": minimal_spec(),
        "grid": {"optimizer.lr": [0.01, 0.02, 0.03]},
        "seeds": 1,
        "max_concurrent": 3,
    }
    r = client.post("/sweeps", json=body)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    try:
        kids = client.get("/jobs", params={"sweep_id": sweep_id, "limit": 200}).json()["data"]
        assert len(kids) == 3 and all(j["sweep_id"] == sweep_id for j in kids)
        ids = [j["id"] for j in kids]
        assert ids == sorted(ids, reverse=True)  # newest first, stable
        by_lr = client.get(
            "/jobs", params={"sweep_id": sweep_id, "sort": "-spec.optimizer.lr"}
        ).json()["data"]
        assert [j["spec"]["optimizer"]["lr"] for j in by_lr] == [0.03, 0.02, 0.01]
        assert client.get("/jobs", params={"sweep_id": "s-nope"}).json()["data"] == []
    finally:
        client.post(f"/sweeps/{sweep_id}/cancel")


def test_search_id_filter_and_row_field(api, client):
    """A search's trials carry search_id in their record (as api/search_driver submits them)."""
    search_id = f"x{uuid.uuid4().hex[:20]}"
    spec = JobSpec.model_validate(minimal_spec()).model_dump(mode="json")
    made = [
        api.store.create_job({**spec, "name": f"trial {i}"}, extra={"search_id": search_id})
        for i in range(2)
    ]
    try:
        rows = client.get("/jobs", params={"search_id": search_id, "sort": "name"}).json()["data"]
        assert [j["id"] for j in rows] == [m["id"] for m in made]
        assert all(j["search_id"] == search_id for j in rows)
    finally:
        for m in made:
            api.store.cancel(m["id"])


@pytest.mark.parametrize(
    "params, loc, words",
    [
        ({"sweep_id": "s" * 65}, ["query", "sweep_id"], "64"),
        ({"sort": "bogus"}, ["query", "sort"], "unknown path"),
        ({"sort": "-spec.optimizer.nope"}, ["query", "sort"], "unknown path"),
        ({"sort": "spec.optimizer.lr.x"}, ["query", "sort"], "unknown path"),
        ({"sort": "best"}, ["query", "sort"], "one field"),
        ({"sort": "best.val_acc.x"}, ["query", "sort"], "one field"),
        ({"sort": "created_at.x"}, ["query", "sort"], "unknown path"),
        ({"sort": "spec..lr"}, ["query", "sort"], "field path"),
        ({"sort": "x" * 201}, ["query", "sort"], "at most 200"),
        ({"status": "done"}, ["query", "status"], ""),
        ({"tag": "a,b"}, ["query", "tag"], "comma"),
        ({"tag": "x" * 65}, ["query", "tag"], "at most 64"),
        ({"tag": "  "}, ["query", "tag"], "empty"),
        ({"q": "x" * 201}, ["query", "q"], "at most 200"),
        ({"sort": "best.val_acc", "cursor": "j0000"}, ["query", "cursor"], "cursor"),
        ({"sort": "best.val_acc", "cursor": "c!!!"}, ["query", "cursor"], "cursor"),
        ({"cursor": "cW10"}, ["query", "cursor"], "sort"),
        ({"cursor": "not-an-id"}, ["query", "cursor"], "cursor"),
    ],
)
def test_bad_listing_parameters_are_422_naming_the_parameter(client, params, loc, words):
    err = assert_error(client.get("/jobs", params=params), 422, "validation_error")
    assert locs(err) == [loc], err
    assert words in err["details"][0]["msg"], err


def test_known_spec_paths_of_any_variant_are_accepted(client):
    for sort in (
        "spec.schedule.decay.kind",
        "spec.schedule.decay.min_lr",  # cosine and linear have it
        "-spec.regularization.mixup.alpha",
        "spec.model.hidden",
        "progress.samples_per_second",
        "-duration_s",
        "name",
        "metrics.val_ece",
    ):
        r = client.get("/jobs", params={"sort": sort, "limit": 2})
        assert r.status_code == 200, (sort, r.text)


def test_a_cursor_of_another_sort_is_422(client, runs):
    q, _ = runs
    page = client.get("/jobs", params={"sort": "best.val_acc", "q": q, "limit": 2}).json()
    err = assert_error(
        client.get(
            "/jobs", params={"sort": "-best.val_acc", "q": q, "cursor": page["next_cursor"]}
        ),
        422,
    )
    assert locs(err) == [["query", "cursor"]] and "sort=best.val_acc" in err["message"]


# ------------------------------------------------------------------ tags and notes


def test_patch_sets_tags_and_notes_and_tag_filters_the_list(api, client):
    uid = uuid.uuid4().hex[:8]
    a = api.create_job(client, name=f"tags-{uid}-a")
    b = api.create_job(client, name=f"tags-{uid}-b")
    try:
        r = client.patch(
            f"/jobs/{a['id']}",
            json={"tags": [f"best-{uid}", " baseline ", "baseline", "ünïcode ✓"], "notes": "n1"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["tags"] == [f"best-{uid}", "baseline", "ünïcode ✓"]  # trimmed, once
        assert r.json()["notes"] == "n1"
        client.patch(f"/jobs/{b['id']}", json={"tags": [f"best-{uid}"]}).raise_for_status()
        got = client.get(f"/jobs/{a['id']}").json()
        assert got["tags"] == [f"best-{uid}", "baseline", "ünïcode ✓"] and got["notes"] == "n1"

        def tagged(tag: str, **more) -> list[str]:
            body = client.get("/jobs", params={"tag": tag, "limit": 200, **more}).json()
            return [j["id"] for j in body["data"]]

        assert tagged(f"best-{uid}") == [b["id"], a["id"]]
        assert a["id"] in tagged("ünïcode ✓")
        assert tagged(f"best-{uid}", sort="created_at") == [a["id"], b["id"]]
        # notes alone leaves the tags; replacing the tags takes a out of the old tag's set
        client.patch(f"/jobs/{a['id']}", json={"notes": "n2"}).raise_for_status()
        assert client.get(f"/jobs/{a['id']}").json()["tags"][0] == f"best-{uid}"
        client.patch(f"/jobs/{a['id']}", json={"tags": ["other"]}).raise_for_status()
        assert tagged(f"best-{uid}") == [b["id"]]
        assert client.get(f"/jobs/{a['id']}").json()["notes"] == "n2"
        client.patch(f"/jobs/{b['id']}", json={"tags": []}).raise_for_status()
        assert tagged(f"best-{uid}") == []
    finally:
        for j in (a, b):
            client.post(f"/jobs/{j['id']}/cancel")


@pytest.mark.parametrize(
    "body, loc, words",
    [
        ({"tags": ["a,b"]}, ["tags", 0], "comma"),
        ({"tags": ["ok", ""]}, ["tags", 1], "empty"),
        ({"tags": ["ok", "x" * 65]}, ["tags", 1], "at most 64"),
        ({"tags": [f"t{i}" for i in range(33)]}, ["tags"], "32"),
        ({"tags": "one"}, ["tags"], "list"),
        ({"notes": "x" * 10_001}, ["notes"], "10000"),
        ({"colour": "red"}, ["colour"], "xtra"),
    ],
)
def test_bad_patches_are_422_naming_the_field(api, client, body, loc, words):
    job = api.create_job(client)
    try:
        err = assert_error(client.patch(f"/jobs/{job['id']}", json=body), 422, "validation_error")
        assert loc in locs(err), err
        detail = next(d for d in err["details"] if d["loc"] == loc)
        assert words in detail["msg"].replace(",", ""), detail
        assert client.get(f"/jobs/{job['id']}").json()["tags"] == []
    finally:
        client.post(f"/jobs/{job['id']}/cancel")


def test_patch_is_tenant_isolated_and_unknown_is_404(api, client):
    other = api.store.create_job(minimal_spec(), tenant=f"other-{uuid.uuid4().hex[:6]}")
    err = assert_error(client.patch(f"/jobs/{other['id']}", json={"tags": ["x"]}), 404)
    assert other["id"] in err["message"]
    assert "tags" not in api.store.r.hgetall(api.store.keys.job(other["id"]))
    assert_error(client.patch("/jobs/j0000000000000000dead", json={"tags": ["x"]}), 404)
    listed = client.get("/jobs", params={"q": other["id"], "limit": 200}).json()["data"]
    assert listed == []


def test_tags_that_look_like_index_keys_do_not_break_the_reaper_scan(api, client):
    """A tag's set key is hex-encoded: a tag "jobs:running" must not make a key that the
    per-status SCAN (the reaper's, the reconciler's) takes for a status index."""
    job = api.create_job(client)
    try:
        client.patch(
            f"/jobs/{job['id']}", json={"tags": ["jobs", "jobs:running"]}
        ).raise_for_status()
        api.store.jobs_in("running")  # WRONGTYPE if a tag set matched the pattern
        api.store.jobs_in("queued")
        assert job["id"] in [
            j["id"] for j in client.get("/jobs", params={"tag": "jobs:running"}).json()["data"]
        ]
    finally:
        client.post(f"/jobs/{job['id']}/cancel")


def test_default_listing_is_unchanged_and_still_takes_id_cursors(client, runs):
    first = client.get("/jobs", params={"limit": 2}).json()
    assert first["next_cursor"] and first["next_cursor"].startswith("j")
    second = client.get("/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [j["id"] for j in first["data"] + second["data"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    # filters without a sort page by id as well
    q, run_ids = runs
    paged = page_all(client, limit=2, q=q)
    assert paged == sorted(paged, reverse=True)
    assert set(run_ids) <= set(page_all(client, limit=2, q=q))
