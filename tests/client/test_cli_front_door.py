"""The CLI's front door: pipes, cancel and status lines, epochs, dataset splits, preview
--dataset, and the range test's curve stored once.

Pure tests first (no server, or a real API without a worker), then the ones that need
the real service (Redis, a Celery worker, the API over HTTP).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from support import (
    ROOT,
    launch_api,
    long_spec,
    minimal_spec,
    small_spec,
    submit,
    wait_done,
    wait_running,
)

from tricklab.client.cli_jobs import cancel_line
from tricklab.client.cli_util import epoch_of, error_text, train_val
from tricklab.client.watch import Progress, _outcome_line

# test_cli_runs' database: modules run one after the other, and each API start flushes it
DB = 14


def cli(url: str, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": url}
    env.pop("TRICKLAB_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


# ---------------------------------------------------------------------- pure


def test_closed_stdout_ends_quietly_with_141(tmp_path):
    """`tricklab preview ... | head -0`: the reader is gone before the first line."""
    sched = tmp_path / "s.json"
    sched.write_text(json.dumps({"decay": {"kind": "cosine"}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": "http://127.0.0.1:9"}
    args = ["preview", str(sched), "--lr", "0.1", "--epochs", "3", "--steps-per-epoch", "5"]
    p = subprocess.Popen(
        [sys.executable, "-m", "tricklab.client.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # before the child (a fresh interpreter) writes anything
    err = p.stderr.read().decode()
    assert p.wait(60) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize(
    ("progress", "status", "shown"),
    [
        ({"epoch": 0, "epochs": 200, "step": 0, "total_steps": 4400}, "queued", "—/200"),
        ({"epoch": 8, "epochs": 20, "step": 190, "total_steps": 440}, "running", "9/20"),
        ({"epoch": 0, "epochs": 20, "step": 3, "total_steps": 440}, "running", "1/20"),
        ({"epoch": 19, "epochs": 20, "step": 440, "total_steps": 440}, "succeeded", "20/20"),
        # preempted and queued again: it has started, so its epoch is real
        ({"epoch": 4, "epochs": 20, "step": 100, "total_steps": 440}, "queued", "5/20"),
        ({}, "queued", "-"),
    ],
)
def test_epochs_are_shown_one_based_and_not_before_the_start(progress, status, shown):
    assert epoch_of(progress, status) == shown


def test_the_watch_bar_of_a_queued_job_shows_no_epoch():
    import io

    bar = Progress(stream=io.StringIO(), tty=False)
    bar.update_job({"status": "queued", "progress": {"epoch": 0, "epochs": 200, "step": 0}})
    assert bar.text().startswith("epoch —/200")
    bar.update_job({"status": "running", "progress": {"epoch": 8, "epochs": 200, "step": 9}})
    assert bar.text().startswith("epoch 9/200")


def test_a_diverged_error_reads_once():
    err = {"type": "diverged", "message": "diverged at step 123 (lr = 0.9)"}
    assert (
        error_text("failed", err)
        == "failed: diverged — the loss became nan or inf at step 123 (lr 0.9)"
    )
    job = {"id": "j1", "status": "failed", "error": err}
    assert (
        _outcome_line(job)
        == "job j1 failed: diverged — the loss became nan or inf at step 123 (lr 0.9)"
    )
    oom = {
        "type": "oom",
        "message": "out of memory at step 3 on cuda:0 (...): lower training.batch_size",
    }
    assert error_text("failed", oom) == f"failed: oom — {oom['message']}"
    assert error_text("failed", {"type": "time_limit", "message": ""}) == "failed: time limit"


def test_cancel_lines_say_what_happened():
    running = cancel_line("j1", {"id": "j1", "status": "running", "cancel_requested": True})
    assert running == (
        "cancel requested: j1 was running; it stops at its next step "
        "(use `tricklab watch j1` to follow)"
    )
    assert (
        cancel_line("j2", {"status": "cancelled"}) == "cancelled: j2 was queued; it will not start"
    )


@pytest.mark.parametrize(
    ("item", "split"),
    [
        # no own validation split, reported the old way: a job with val_fraction 0.2 holds
        # out round(900 × 0.2) = 180 (by hand) and trains on 720
        ({"n_train": 900, "n_val": 0}, (720, 180)),
        ({"n_train": 900, "n_val": 0, "own_val": False}, (720, 180)),
        ({"n_train": 720, "n_val": 180, "own_val": False}, (720, 180)),  # the API split it
        ({"n_train": 800, "n_val": 100, "own_val": True}, (800, 100)),  # its own x_val
        ({"n_train": 1438, "n_val": 359, "builtin": True}, (1438, 359)),
    ],
)
def test_datasets_show_the_split_a_job_gets(item, split):
    assert train_val(item) == split


# ------------------------------------------------------- a real API, no worker


@pytest.fixture(scope="module")
def api(redis_server, tmp_path_factory):
    p = launch_api(redis_server.port, tmp_path_factory, DB, "cli-front-door-api")
    yield p
    p.proc.stop()


@pytest.fixture(scope="module")
def upload(api, tmp_path_factory) -> str:
    """An uploaded .npz of 500 samples without x_val: jobs split it 400/100."""
    import httpx

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("npz") / "five_hundred.npz"
    np.savez(path, x=rng.normal(size=(500, 6)).astype("float32"), y=rng.integers(0, 3, 500))
    with open(path, "rb") as fh:
        r = httpx.post(
            f"{api.url}/datasets",
            files={"file": (path.name, fh, "application/octet-stream")},
            data={"name": "five hundred"},
            timeout=60,
        )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_ls_of_a_queued_job_shows_no_epoch(api):
    import httpx

    with httpx.Client(base_url=api.url, timeout=30) as c:
        job = submit(c, {**minimal_spec(), "name": "queued one"})
    r = cli(api.url, "ls", "--q", "queued one")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith(job["id"]))
    assert "—/3" in row and "1/3" not in row, r.stdout
    st = cli(api.url, "status", job["id"])
    assert "epoch —/3, step 0/" in st.stdout, st.stdout


def test_ls_into_a_closed_shell_pipe_has_no_traceback(api):
    """`tricklab ls | head -n 0` (head is gone before the table): exit 141, nothing on stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": api.url}
    cmd = f"{sys.executable} -m tricklab.client.cli ls | head -n 0"
    r = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {cmd}"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert r.returncode == 141 and r.stderr == "", r.stderr


def test_datasets_table_shows_the_default_split(api, upload):
    r = cli(api.url, "datasets")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    # digits: 1797 samples, round(1797 × 0.2) = 359 held out (by hand)
    assert "1438/359" in rows["digits"], rows["digits"]
    assert "400/100" in rows[upload], rows[upload]


def test_preview_takes_steps_per_epoch_from_a_dataset(api, upload, tmp_path):
    sched = tmp_path / "s.json"
    sched.write_text(json.dumps({"decay": {"kind": "cosine"}}))
    base = ["preview", str(sched), "--lr", "0.1", "--epochs", "3"]
    # 1438 // 64 = 22 steps per epoch for digits (by hand), 3 epochs: 66 steps
    r = cli(api.url, *base, "--dataset", "digits", "--batch-size", "64")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("total_steps 66 (3 epochs × 22 steps per epoch: 1438"), r.stdout
    # the upload: 400 // 32 = 12 steps per epoch, read from GET /datasets/{id}
    r = cli(api.url, *base, "--dataset", upload, "--batch-size", "32")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("total_steps 36 (3 epochs × 12 steps per epoch: 400"), r.stdout
    # a job spec's data.dataset and batch size; --dataset overrides the dataset
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({**minimal_spec(), "training": {"epochs": 2, "batch_size": 100}}))
    r = cli(api.url, "preview", str(spec), "--dataset", upload)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("total_steps 8 (2 epochs × 4 steps per epoch: 400"), r.stdout
    bad = cli(api.url, *base, "--dataset", "nope")
    assert bad.returncode == 2 and "neither built in nor uploaded" in bad.stderr, bad.stderr


# ---------------------------------------------------------------- the service


@pytest.mark.service
@pytest.mark.slow
def test_cancel_and_status_through_the_service(service, cleanup):
    with service.client() as c:
        job = cleanup.job(submit(c, long_spec()))
        wait_running(c, job["id"], timeout=120)
        r = cli(service.api_url, "cancel", job["id"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == (
            f"cancel requested: {job['id']} was running; it stops at its next step "
            f"(use `tricklab watch {job['id']}` to follow)"
        )
        assert wait_done(c, job["id"], timeout=120)["status"] == "cancelled"

        # tests/service/test_jobs.py's diverging spec
        wild = small_spec(epochs=2)
        wild["model"] = {"arch": "mlp", "hidden": [256, 256, 256]}
        wild["optimizer"] = {"name": "sgd", "lr": 100.0, "momentum": 0.99}
        wild["schedule"] = {"decay": {"kind": "constant"}}
        wild["regularization"] = {}
        bad = cleanup.job(submit(c, wild))
        done = wait_done(c, bad["id"], timeout=120)
    assert done["status"] == "failed" and done["error"]["type"] == "diverged", done["error"]
    st = cli(service.api_url, "status", bad["id"])
    line = next(x for x in st.stdout.splitlines() if x.strip().startswith("error"))
    assert "failed: diverged — the loss became nan or inf at step" in line, st.stdout
    assert line.count("diverged") == 1, line


@pytest.mark.service
@pytest.mark.slow
def test_the_range_tests_curve_is_stored_once(service, cleanup):
    spec = json.loads((ROOT / "examples" / "lr_range_test.json").read_text())
    with service.client() as c:
        job = cleanup.job(submit(c, spec))
        done = wait_done(c, job["id"], timeout=180)
        assert done["status"] == "succeeded", done.get("error")
        every = {"metrics": "range_lr,range_loss,range_smoothed,lr,train_loss,smoothed_loss"}
        s = c.get(f"/jobs/{job['id']}/curves", params=every).json()["series"]
    n = len(done["result"]["lr_range"]["lrs"])
    assert [len(s[k]["step"]) for k in ("range_lr", "range_loss", "range_smoothed")] == [n] * 3
    assert s["range_lr"]["step"] == list(range(n))
    # the live series keep their log points only: not a second per-step copy
    every_n = spec["training"].get("log_every", 10)
    assert len(s["lr"]["step"]) <= n // every_n + 1 < n
