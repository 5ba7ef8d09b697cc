"""Client and CLI against the real service: Redis, a Celery worker and the API over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import ROOT, long_spec, wait_running

from tricklab.client.http import ApiError, Client

pytestmark = [pytest.mark.service, pytest.mark.slow]

EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"


def small(name: str = "warmup_cosine.json", epochs: int = 3, **training) -> dict:
    """An example spec cut down to a few epochs, so the suite stays quick on 2 cores."""
    spec = json.loads((EXAMPLES / name).read_text())
    spec["training"].update(epochs=epochs, **training)
    if (spec.get("schedule") or {}).get("warmup"):
        spec["schedule"]["warmup"] = {"epochs": 1, "start_lr": 0.0}
    return spec


def cli(service, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": service.api_url}
    env.pop("TRICKLAB_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def client(service):
    with Client(url=service.api_url) as c:
        yield c


@pytest.fixture(scope="module")
def done_job(client):
    job = client.submit(small(), idempotency_key=None)
    assert job["status"] == "queued" and job["id"]
    return client.wait(job["id"], timeout=180, poll=0.2)


def test_submit_and_wait_succeeds(done_job):
    assert done_job["status"] == "succeeded", done_job.get("error")
    assert done_job["best"]["val_acc"] > 0.5
    assert done_job["progress"]["epochs"] == 3


def test_curves_and_lr_are_non_empty(client, done_job):
    cur = client.curves(done_job["id"])
    s = cur["series"]
    assert s["train_loss"]["step"] and len(s["val_acc"]["value"]) == 3
    sub = client.curves(done_job["id"], metrics=["val_acc"], max_points=2)
    assert set(sub["series"]) == {"val_acc"} and len(sub["series"]["val_acc"]["step"]) <= 3
    lr = client.lr(done_job["id"])
    assert lr["planned"]["step"] and lr["actual"]["step"]


def test_events_end_with_a_terminal_status(client):
    job = client.submit(small(epochs=2))
    evs = list(client.events(job["id"]))
    types = [e.type for e in evs]
    assert "epoch" in types
    statuses = [e.data["status"] for e in evs if e.type == "status"]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded"
    # resuming after the last id yields nothing more (the stream is finished)
    assert list(client.events(job["id"], last_event_id=evs[-1].id)) == []


def test_list_get_cancel_and_errors(client, done_job):
    page = client.list(limit=5)
    assert any(j["id"] == done_job["id"] for j in page["data"])
    assert any(j["id"] == done_job["id"] for j in client.iter_jobs(status="succeeded"))
    with pytest.raises(ApiError) as ei:
        client.cancel(done_job["id"])
    assert ei.value.status == 409 and "\n" not in str(ei.value)
    with pytest.raises(ApiError) as ei:
        client.get("j000000000000deadbeef")
    assert ei.value.status == 404


def test_preview_matches_local_math(client):
    from tricks.schedules import preview
    from tricks.spec import ScheduleSpec

    sched = {"warmup": {"epochs": 2}, "decay": {"kind": "cosine"}}
    res = client.preview(0.1, 10, 22, sched)
    want = preview(
        lr=0.1, epochs=10, steps_per_epoch=22, schedule=ScheduleSpec.model_validate(sched)
    )
    assert res["total_steps"] == 220
    assert res["lr"] == pytest.approx(want["lr"])


def test_cli_submit_watch_exits_0_with_progress(service, tmp_path):
    spec = tmp_path / "bag.json"
    spec.write_text(json.dumps(small("bag_of_tricks.json", epochs=3)))
    r = cli(service, "submit", str(spec), "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("j")
    assert any(line.startswith("epoch 3/3") and "val_acc" in line for line in lines), r.stdout
    assert "succeeded" in lines[-1]


def test_cli_curves_png_status_ls_compare(service, done_job, tmp_path):
    png = tmp_path / "c.png"
    r = cli(service, "curves", done_job["id"], "--png", str(png), "--csv", str(tmp_path / "c.csv"))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == PNG
    assert (tmp_path / "c.csv").read_text().startswith("metric,step,value")
    r = cli(service, "status", done_job["id"])
    assert r.returncode == 0 and "succeeded" in r.stdout and "val_acc" in r.stdout
    r = cli(service, "ls", "--limit", "5")
    assert r.returncode == 0 and done_job["id"] in r.stdout
    cmp = tmp_path / "cmp.png"
    r = cli(service, "compare", done_job["id"], done_job["id"], "--x", "epoch", "--png", str(cmp))
    assert r.returncode == 0, r.stderr
    assert cmp.read_bytes()[:8] == PNG
    r = cli(service, "lr", done_job["id"], "--png", str(tmp_path / "lr.png"))
    assert r.returncode == 0 and (tmp_path / "lr.png").read_bytes()[:8] == PNG


def test_cli_api_422_is_one_line_exit_2(service, tmp_path):
    # Valid locally (the CLI cannot know an uploaded id), refused by the API: unknown dataset.
    spec = small()
    spec["data"]["dataset"] = "d_no_such_dataset"
    f = tmp_path / "unknown.json"
    f.write_text(json.dumps(spec))
    r = cli(service, "submit", str(f))
    assert r.returncode in (1, 2), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(("422", "404", "400")), r.stderr
    # a warm-up in steps longer than training is only known with the dataset: the API says so
    spec = small()
    spec["schedule"]["warmup"] = {"steps": 5000}
    f.write_text(json.dumps(spec))
    with Client(url=service.api_url) as c, pytest.raises(ApiError) as ei:
        c.submit(spec)
    assert ei.value.status == 422 and "schedule.warmup.steps" in str(ei.value)


def test_upload_and_train_on_signals(service, client, tmp_path):
    npz = tmp_path / "signals.npz"
    subprocess.run(
        [sys.executable, str(EXAMPLES / "make_signals.py"), str(npz), "--n", "300"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    r = cli(service, "upload", str(npz), "--name", "chirps")
    assert r.returncode == 0, r.stderr
    ds_id = r.stdout.strip()
    assert any(d["id"] == ds_id for d in client.datasets()["data"])
    r = cli(service, "datasets")
    assert ds_id in r.stdout and "waves" in r.stdout
    spec = small("signal_conv1d.json", epochs=2)
    spec["data"]["dataset"] = ds_id
    job = client.wait(client.submit(spec)["id"], timeout=180, poll=0.2)
    assert job["status"] == "succeeded", job.get("error")


def test_cli_watch_exits_130_when_the_job_is_cancelled(service, client, cleanup):
    job = cleanup.job(client.submit(long_spec()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": service.api_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tricklab.client.cli", "watch", job["id"]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with service.client() as c:
            wait_running(c, job["id"])
        client.cancel(job["id"])
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "cancelled" in out.splitlines()[-1]
    # watching a finished job prints its outcome at once
    r = cli(service, "watch", job["id"])
    assert r.returncode == 130 and "cancelled" in r.stdout
