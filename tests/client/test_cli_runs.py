"""`tricklab tag` and `tricklab jobs --sort/--tag/--status/--q` through the real console
entry point, against a real API and Redis (a private database, no worker: jobs stay queued
or are finished through the Store as a worker would)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest
from support import ROOT, launch_api, minimal_spec, submit

from tricklab.client.http import Client
from tricklab.server.connection import connect
from tricklab.server.store import Store

DB = 14  # 0 service, 1 api, 5/6 security, 7 dashboard auth, 11 submit path, 12 vocab, 13 disk


@pytest.fixture(scope="module")
def api(redis_server, tmp_path_factory):
    p = launch_api(redis_server.port, tmp_path_factory, DB, "cli-runs-api")
    yield p
    p.proc.stop()


def cli(api, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": api.url}
    env.pop("TRICKLAB_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tag_adds_removes_and_jobs_filters_and_sorts(api):
    uid = uuid.uuid4().hex[:6]
    store = Store(connect(api.redis_url), "tl")
    with httpx.Client(base_url=api.url, timeout=30) as c:
        ids = []
        for i, (lr, acc) in enumerate([(0.1, 0.8), (0.3, 0.9), (0.2, None)]):
            spec = {**minimal_spec(), "name": f"cli-{uid}-{i}", "optimizer": {"lr": lr}}
            ids.append(submit(c, spec)["id"])
            if acc is not None:
                a, _ = store.claim(ids[-1], "w", lease_s=60, max_attempts=3)
                store.heartbeat(ids[-1], a, lease_s=60, best={"val_acc": acc, "epoch": 1})
                store.finish(ids[-1], a, "succeeded")

    r = cli(api, "tag", ids[0], f"keep-{uid}", "baseline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{ids[0]}: keep-{uid}, baseline"
    r = cli(api, "tag", ids[1], f"keep-{uid}", "--notes", "the good one")
    assert r.returncode == 0, r.stderr
    r = cli(api, "tag", ids[0], "--rm", "baseline")
    assert r.stdout.strip() == f"{ids[0]}: keep-{uid}"
    r = cli(api, "status", ids[0])
    assert r.returncode == 0 and f"tags       keep-{uid}" in r.stdout
    with Client(url=api.url) as client:
        assert client.get(ids[1])["notes"] == "the good one"
        assert [j["id"] for j in client.iter_jobs(tag=f"keep-{uid}", limit=None)] == [
            ids[1],
            ids[0],
        ]

    # --sort -best.val_acc: 0.9, 0.8, then the queued one (no val_acc) last
    r = cli(api, "jobs", "--q", f"cli-{uid}", "--sort=-best.val_acc", "--col", "optimizer.lr")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "OPTIMIZER.LR" in lines[0] and "TAGS" in lines[0]
    assert [ln.split()[0] for ln in lines[1:]] == [ids[1], ids[0], ids[2]]
    assert "0.3" in lines[1] and f"keep-{uid}" in lines[1]
    r = cli(
        api, "jobs", "--tag", f"keep-{uid}", "--status", "succeeded", "--sort", "spec.optimizer.lr"
    )
    assert [ln.split()[0] for ln in r.stdout.splitlines()[1:]] == [ids[0], ids[1]]
    r = cli(api, "ls", "--q", f"cli-{uid}", "--status", "queued")
    assert [ln.split()[0] for ln in r.stdout.splitlines()[1:]] == [ids[2]]


def test_bad_tag_and_sort_are_one_line_exit_2(api):
    with httpx.Client(base_url=api.url, timeout=30) as c:
        job = submit(c, minimal_spec())
    r = cli(api, "tag", job["id"], "a,b")
    assert r.returncode == 2 and "comma" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli(api, "jobs", "--sort", "spec.nope")
    assert r.returncode == 2 and "unknown path" in r.stderr
    r = cli(api, "tag", job["id"])
    assert r.returncode == 2 and "TAG" in r.stderr
    r = cli(api, "tag", "j0000000000000000dead", "x")
    assert r.returncode == 1 and "does not exist" in r.stderr
