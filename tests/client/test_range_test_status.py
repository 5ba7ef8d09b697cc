"""An LR range test that diverges, through the real service (Redis, a Celery worker, the
API over HTTP) and the CLI: its progress says where it stopped, its result says why, and
`tricklab status` describes the lr range it swept, not a decay it never had."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import ROOT, submit, wait_done

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_a_diverged_range_test_reports_where_and_why_it_stopped(service, cleanup):
    spec = json.loads((ROOT / "examples" / "lr_range_test.json").read_text())
    with service.client() as c:
        job = cleanup.job(submit(c, spec))
        done = wait_done(c, job["id"], timeout=180)
    assert done["status"] == "succeeded", done.get("error")
    result, p = done["result"], done["progress"]
    assert result["stop_reason"] == "diverged" and result["lr_range"]["stopped_early"]
    steps = result["steps"]
    assert 10 < steps < 100
    # the last heartbeat is the step it stopped at, not the last multiple of log_every
    assert p["step"] == steps and p["total_steps"] == 100
    assert result["suggested_lr"] < result["lr_range"]["diverged_at_lr"] / 3

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRICKLAB_URL": service.api_url}
    env.pop("TRICKLAB_API_KEY", None)
    r = subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", "status", job["id"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "lr range test 0.0001 → 10 (exponential, 100 steps)" in r.stdout, r.stdout
    assert "cosine" not in r.stdout
    assert f"stopped    diverged at step {steps}" in r.stdout
    assert f"step {steps}/100" in r.stdout
