"""Out of memory and the time budget end a job with its reason, never a retry loop."""

from __future__ import annotations

import pytest
from support import LONG_TRAINING, Proc, reliability_spec, submit, wait_done, worker_argv

pytestmark = [pytest.mark.slow, pytest.mark.service]


def test_out_of_memory_fails_with_type_oom_once(rel, reference):
    """A real allocation failure: the worker runs under an address-space limit
    (setrlimit via ulimit -v) that a 8192-wide layer cannot fit in."""
    limit_kb = reference["peak_kb"] + 150 * 1024
    w = Proc(
        ["bash", "-c", f'ulimit -v {limit_kb} && exec "$@"', "bash", *worker_argv("oom")],
        dict(rel.env, MALLOC_ARENA_MAX="2"),
        rel.logs / "oom.log",
    ).start()
    rel.workers.append(w)
    body = reliability_spec(epochs=2)
    body["model"] = {"arch": "mlp", "hidden": [8192, 8192]}
    with rel.client() as c:
        jid = submit(c, body)["id"]
        done = wait_done(c, jid, 90)
        assert done["status"] == "failed", (done, w.tail())
        assert done["error"]["type"] == "oom", done["error"]
        assert "out of memory" in done["error"]["message"]
        assert done["attempts"] == 1


def test_time_limit_checkpoints_and_fails(rel):
    rel.add_worker()
    with rel.client() as c:
        # the 1 s budget is the scenario; the job itself is far longer than any budget
        jid = submit(c, reliability_spec(**LONG_TRAINING, time_limit_s=1.0))["id"]
        done = wait_done(c, jid, 60)
        assert done["status"] == "failed", done
        assert done["error"]["type"] == "time_limit"
        assert done["attempts"] == 1
        ck = list((rel.artifact_dir / "jobs" / jid / "checkpoints").glob("ckpt-*.pt"))
        assert ck, "the job checkpointed before failing"
