"""`tricklab up`'s console is short: a few status lines, then the URLs and the export line
last; the Celery banner, the per-epoch lines and the access logs go to var/log/.

The real `tricklab up` (through the `tricklab` CLI's own `up` command) in a temp checkout,
on a free PORT given the way `make up PORT=...` gives it: in the environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import ROOT, free_port, minimal_spec, submit, wait_done, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.service,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)"),
]


def up_env(port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRICKLAB_", "CUDA")) and k not in ("REDIS_URL", "ARTIFACT_DIR")
    }
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PORT=str(port))
    return env


def test_up_console_is_short_and_ends_with_the_urls(tmp_path):
    port, redis_port = free_port(), free_port()
    console = tmp_path / "console.txt"
    with open(console, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tricklab.client.cli", "up", "--redis-port", str(redis_port)],
            cwd=tmp_path,
            env=up_env(port),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: f"export TRICKLAB_URL={url}" in console.read_text(), 180, 0.3, what="the banner"
        )
        with httpx.Client(base_url=url, timeout=30) as c:
            job = submit(c, {**minimal_spec(epochs=2), "name": "console"})
            assert wait_done(c, job["id"], timeout=180)["status"] == "succeeded"
            for _ in range(5):
                c.get("/jobs")  # access lines, which belong in var/log/api.log
        time.sleep(1)  # let the worker's last lines reach its log
        text = console.read_text()
        lines = text.rstrip("\n").splitlines()
        assert len(lines) < 25, text
        assert lines[-3:] == [
            f"  Dashboard: {url}/",
            f"  API docs:  {url}/docs",
            f"  export TRICKLAB_URL={url}",
        ], text
        assert "NO AUTHENTICATION" in text  # the key banner: loopback, no keys
        # neither the Celery banner, nor epoch lines, nor access logs reach the console
        assert "celery@" not in text and "epoch 1/" not in text and "GET /jobs" not in text, text
        logs = tmp_path / "var" / "log"
        worker_log = (logs / "worker.log").read_text(errors="replace")
        api_log = (logs / "api.log").read_text(errors="replace")
        assert "celery" in worker_log.lower() and job["id"] in worker_log, worker_log[-2000:]
        assert "/jobs" in api_log, api_log[-2000:]
        assert (logs / "redis.log").resolve() == (
            tmp_path / "var" / "redis" / "redis.log"
        ).resolve()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
