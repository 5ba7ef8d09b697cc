"""Bodies, cursors and uploads that used to be 500s are 4xx (or 507) over real HTTP.

Each test here failed against the code before its fix: deep JSON (pydantic's serializer and
deepcopy recursed until they broke), `seeds: 10**15` (a MemoryError building the seed list),
stream ids past uint64 (Redis refused them), a CSV header cell past csv's field limit
(csv.Error), and a full artifact disk (OSError). The property tests at the end throw
generated bodies at every JSON POST and accept anything but a 5xx.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import assert_error, launch_api, locs, minimal_spec, submit

pytestmark = [pytest.mark.service]

MAX_DEPTH = 64  # api.limits.MAX_JSON_DEPTH, the contract these tests pin
U64 = 2**64


def nested(depth: int, leaf: Any = 0, kind: str = "list") -> Any:
    """A value `depth` arrays (or objects) deep, built without recursion."""
    v = leaf
    for _ in range(depth):
        v = [v] if kind == "list" else {"k": v}
    return v


def deep_json(depth: int, leaf: str = "0") -> bytes:
    """The JSON text of `depth` nested arrays, without asking json.dumps to recurse."""
    return b"[" * depth + leaf.encode() + b"]" * depth


def sweep_body(**over: Any) -> dict[str, Any]:
    return {"base": minimal_spec(), "grid": {"training.seed": [0]}, **over}


def assert_too_deep(resp: httpx.Response) -> None:
    err = assert_error(resp, 422, "validation_error")
    assert err["details"][0]["loc"] == ["body"], err
    assert err["details"][0]["max_json_depth"] == MAX_DEPTH, err
    assert str(MAX_DEPTH) in err["message"] and "JSON body" in err["message"], err


# ------------------------------------------------------------------ 1. nesting depth


@pytest.mark.parametrize("where", ["base", "grid"])
@pytest.mark.parametrize("depth", [600, 900])  # both were 500s
def test_deeply_nested_sweep_is_422_naming_the_depth_limit(open_api, where, depth):
    body = sweep_body()
    if where == "base":
        body["base"]["notes"] = nested(depth, kind="dict")
    else:
        body["grid"]["regularization.mixup"] = [nested(depth)]
    with open_api.client() as c:
        assert_too_deep(c.post("/sweeps", json=body))


@pytest.mark.parametrize("path", ["/jobs", "/sweeps", "/schedules/preview"])
def test_a_32000_deep_body_is_422_at_once(open_api, path):
    # 64,000 bytes: under the fixture's 64 KiB body limit, so the depth check is what answers
    with open_api.client() as c:
        r = c.post(path, content=deep_json(32_000), headers={"content-type": "application/json"})
    assert_too_deep(r)
    assert r.elapsed.total_seconds() < 2


def test_a_deep_chunked_body_is_422_too(open_api):
    # no Content-Length: the body limit counts the stream, the depth check sees every chunk
    def chunks() -> Iterator[bytes]:
        yield b"[" * 20_000
        yield b"]" * 20_000

    with open_api.client() as c:
        r = c.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert_too_deep(r)


def test_brackets_inside_strings_do_not_count(open_api):
    spec = {**minimal_spec(), "name": '[{"\\' * 45}
    with open_api.client() as c:
        job = submit(c, spec)
    assert job["name"] == spec["name"]


def test_depth_at_the_limit_is_the_specs_problem_not_the_bodys(open_api):
    body = minimal_spec()
    body["training"]["epochs"] = nested(MAX_DEPTH - 2)  # body + training + 62 = 64 levels
    with open_api.client() as c:
        err = assert_error(c.post("/jobs", json=body), 422, "validation_error")
    assert ["training", "epochs"] in locs(err)


# ------------------------------------------------------------------ 2. seeds


@pytest.mark.parametrize("seeds", [10**15, -(10**15), 10**400])
def test_a_huge_seed_count_is_422_naming_seeds(open_api, seeds):
    raw = json.dumps(sweep_body(seeds=0)).replace('"seeds": 0', f'"seeds": {seeds}')
    with open_api.client() as c:
        r = c.post("/sweeps", content=raw, headers={"content-type": "application/json"})
    err = assert_error(r, 422, "validation_error")
    assert ["seeds"] in locs(err), err
    assert "between 1 and 32" in err["message"]


def test_a_huge_seed_list_is_422_naming_seeds(open_api):
    with open_api.client() as c:
        err = assert_error(
            c.post("/sweeps", json=sweep_body(seeds=list(range(5000)))), 422, "validation_error"
        )
    assert ["seeds"] in locs(err)


# ------------------------------------------------------------------ 3. stream ids


BAD_IDS = [f"{U64}-0", f"0-{U64}", f"{U64 * 10}-0", "1-", "-1", "abc", "1-2-3", "0" * 21 + "-0"]


@pytest.fixture(scope="module")
def queued_job(open_api) -> str:
    with open_api.client() as c:
        return submit(c, minimal_spec())["id"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_log_cursor_past_uint64_is_422_naming_since(open_api, queued_job, bad):
    with open_api.client() as c:
        err = assert_error(
            c.get(f"/jobs/{queued_job}/logs", params={"since": bad}), 422, "validation_error"
        )
    assert locs(err) == [["query", "since"]], err


@pytest.mark.parametrize("bad", BAD_IDS)
def test_event_cursor_past_uint64_is_422_naming_after(open_api, queued_job, bad):
    with open_api.client() as c:
        err = assert_error(
            c.get(f"/jobs/{queued_job}/events", params={"after": bad}), 422, "validation_error"
        )
    assert locs(err) == [["query", "after"]], err


@pytest.mark.parametrize("bad", BAD_IDS)
def test_last_event_id_past_uint64_is_422_naming_the_header(open_api, queued_job, bad):
    with open_api.client() as c:
        r = c.get(f"/jobs/{queued_job}/events", headers={"Last-Event-ID": bad})
    err = assert_error(r, 422, "validation_error")
    assert locs(err) == [["header", "Last-Event-ID"]], err


def test_the_largest_stream_id_is_a_valid_cursor(open_api, queued_job):
    top = f"{U64 - 1}-{U64 - 1}"
    with open_api.client() as c:
        r = c.get(f"/jobs/{queued_job}/logs", params={"since": top})
        assert r.status_code == 200, r.text
        assert r.json() == {"lines": [], "next": top}
        # nothing after it yet: the stream stays open (it would be 204 once the job is done)
        with c.stream(
            "GET", f"/jobs/{queued_job}/events", headers={"Last-Event-ID": top}, timeout=5
        ) as s:
            assert s.status_code == 200
            assert s.headers["content-type"].startswith("text/event-stream")


# ------------------------------------------------------------------ 4. uploads


def upload(c: httpx.Client, filename: str, data: bytes) -> httpx.Response:
    return c.post("/datasets", files={"file": (filename, data, "application/octet-stream")})


def dataset_files(artifact_dir: Path) -> list[str]:
    d = artifact_dir / "datasets"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.mark.parametrize("where", ["header", "row"])
def test_a_csv_field_past_the_csv_limit_is_422(open_api, where):
    long = "1" * 140_000  # csv.field_size_limit() is 131,072
    text = f"{long},label\n1,0\n" if where == "header" else f"a,label\n{long},0\n"
    with open_api.client() as c:
        before = dataset_files(open_api.artifact_dir)
        err = assert_error(upload(c, "long.csv", text.encode()), 422, "validation_error")
    assert err["details"][0]["loc"] == ["file"]
    assert "131072 characters" in err["message"], err
    assert dataset_files(open_api.artifact_dir) == before


def good_npz(n: int = 2000) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.normal(size=(n, 8)).astype(np.float32), y=np.arange(n) % 3)
    return buf.getvalue()


@pytest.fixture(scope="module")
def full_disk_api(redis_server, tmp_path_factory) -> Iterator[Any]:
    """An API whose ARTIFACT_DIR is a 1 MiB tmpfs (a real filesystem that can fill up).

    Mounting needs CAP_SYS_ADMIN (root in a container); without it the test is skipped.
    """
    mnt = tmp_path_factory.mktemp("tiny-artifacts")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here ({res.stderr.strip()}); needs root")
    try:
        p = launch_api(
            redis_server.port, tmp_path_factory, 13, "full-disk-api", ARTIFACT_DIR=str(mnt)
        )
        try:
            yield replace(p, artifact_dir=mnt)  # launch_api's own dir is not the one it uses
        finally:
            p.proc.stop()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def fill(fs: Path) -> Path:
    """Write zeros into fs until the kernel says ENOSPC; the filler file is returned."""
    filler = fs / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as e:
            assert e.errno == 28, e  # ENOSPC
    return filler


def test_an_upload_to_a_full_disk_is_507_and_leaves_nothing(full_disk_api):
    data = good_npz()
    with httpx.Client(base_url=full_disk_api.url, timeout=30) as c:
        (full_disk_api.artifact_dir / "datasets").mkdir(exist_ok=True)
        filler = fill(full_disk_api.artifact_dir)
        try:
            err = assert_error(upload(c, "digits.npz", data), 507, "insufficient_storage")
            assert "disk is full" in err["message"], err
            assert dataset_files(full_disk_api.artifact_dir) == []  # no partial .npz(.tmp)
            listed = c.get("/datasets").json()["data"]
            assert [d for d in listed if not d["builtin"]] == []  # no record, nothing charged
        finally:
            filler.unlink()
        # with room again the same upload is stored: the 507 was the disk, nothing else
        r = upload(c, "digits.npz", data)
        assert r.status_code == 201, r.text
        assert dataset_files(full_disk_api.artifact_dir) == [r.json()["id"]]  # {id}/x.npy, y.npy


# ------------------------------------------------------------------ 5. generated bodies

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**300]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, "NaN", "Infinity", "-Infinity", "1e308"]),
    st.text(max_size=20),
    st.sampled_from(["x" * 5000, "", "cosine", "sgd", "mlp", "digits", "cuda", "batch"]),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
JOB_PATHS = [
    "name", "data", "data.dataset", "data.val_fraction", "model", "model.arch", "model.hidden",
    "optimizer", "optimizer.name", "optimizer.lr", "optimizer.momentum", "schedule",
    "schedule.warmup", "schedule.warmup.epochs", "schedule.decay", "schedule.decay.kind",
    "schedule.decay.milestones", "schedule.per", "regularization", "regularization.mixup",
    "regularization.augment", "regularization.label_smoothing", "training", "training.epochs",
    "training.batch_size", "training.seed", "training.device", "task", "tags", "notes",
]  # fmt: skip
SWEEP_PATHS = ["name", "base", "grid", "ablation", "seeds", "max_concurrent", *(
    f"base.{p}" for p in JOB_PATHS)]  # fmt: skip
PREVIEW_PATHS = [
    "lr", "epochs", "steps_per_epoch", "schedule", "schedule.decay", "schedule.decay.kind",
    "schedule.warmup", "schedule.decay.gamma", "schedule.decay.step_epochs", "max_points",
]  # fmt: skip
FORK_PATHS = ["from_epoch", "name", "schedule", "schedule.decay", "optimizer", "optimizer.lr",
              "regularization", "training", "training.epochs"]  # fmt: skip
VALID = {
    "/jobs": minimal_spec(),
    "/sweeps": sweep_body(seeds=2),
    "/schedules/preview": {"lr": 0.1, "epochs": 3, "steps_per_epoch": 10,
                           "schedule": {"decay": {"kind": "cosine"}}},
    "fork": {"from_epoch": 1, "schedule": {"decay": {"kind": "step", "step_epochs": 1}}},
}  # fmt: skip
PATHS = {"/jobs": JOB_PATHS, "/sweeps": SWEEP_PATHS, "/schedules/preview": PREVIEW_PATHS,
         "fork": FORK_PATHS}  # fmt: skip


def set_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = body
    *parents, last = path.split(".")
    for k in parents:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[last] = value
    return body


@st.composite
def bodies(draw: st.DrawFn, route: str) -> bytes:
    """A JSON text: the route's valid body with a few fields changed, or something else."""
    shape = draw(st.sampled_from(["mutated", "mutated", "mutated", "deep", "any", "huge"]))
    if shape == "any":
        value: Any = draw(VALUES)
    else:
        value = json.loads(json.dumps(VALID[route]))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(PATHS[route]))
            if shape == "deep":
                leaf = nested(draw(st.integers(MAX_DEPTH - 8, 400)), kind=draw(
                    st.sampled_from(["list", "dict"])))  # fmt: skip
            elif shape == "huge":
                leaf = draw(st.sampled_from(["x" * 60_000, list(range(8000)), 10**4000 // 7]))
            else:
                leaf = draw(VALUES)
            set_path(value, path, leaf)
    # allow_nan: NaN and Infinity go out as the bare tokens Python's json (and FastAPI) accept
    with _big_ints():
        return json.dumps(value, allow_nan=True).encode()


@contextmanager
def _big_ints() -> Iterator[None]:
    """Let json.dumps write ints past Python's 4300-digit str() limit (a client could)."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(old)


def assert_no_5xx(r: httpx.Response, body: bytes) -> None:
    shown = body[:300] + (b"..." if len(body) > 300 else b"")
    assert r.status_code < 500, f"{r.status_code} {r.text[:500]} for body {shown!r}"
    if r.status_code >= 400:
        assert_error(r, r.status_code)


FUZZ = settings(
    max_examples=int(os.environ.get("TRICKLAB_BODY_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.mark.parametrize("route", ["/jobs", "/sweeps", "/schedules/preview", "fork"])
def test_no_body_shape_is_a_5xx(open_api, queued_job, route):
    path = f"/jobs/{queued_job}/fork" if route == "fork" else route
    with open_api.client() as c:

        @FUZZ
        @given(body=bodies(route))
        def check(body: bytes) -> None:
            r = c.post(path, content=body, headers={"content-type": "application/json"})
            assert_no_5xx(r, body)

        check()
