"""Out of memory and the time budget end a job with its reason, never a retry loop."""

from __future__ import annotations

import sys

import pytest
from rel_helpers import spec, submit, terminal

pytestmark = [pytest.mark.slow, pytest.mark.service]


def test_out_of_memory_fails_with_type_oom_once(rel, reference):
    """A real allocation failure: the worker runs under an address-space limit
    (setrlimit via ulimit -v) that a 8192-wide layer cannot fit in."""
    limit_kb = reference["peak_kb"] + 150 * 1024
    from support import Proc

    argv = [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker", "-Q", "cpu",
            "-c", "1", "-n", "oom@%h", "--without-gossip", "--without-mingle", "-l", "INFO"]  # fmt: skip
    w = Proc(
        ["bash", "-c", f'ulimit -v {limit_kb} && exec "$@"', "bash", *argv],
        dict(rel.env, MALLOC_ARENA_MAX="2"),
        rel.logs / "oom.log",
    ).start()
    rel.workers.append(w)
    body = spec(epochs=2)
    body["model"] = {"arch": "mlp", "hidden": [8192, 8192]}
    with rel.client() as c:
        jid = submit(c, body)
        done = terminal(c, jid, 90)
        assert done["status"] == "failed", (done, w.tail())
        assert done["error"]["type"] == "oom", done["error"]
        assert "out of memory" in done["error"]["message"]
        assert done["attempts"] == 1


def test_time_limit_checkpoints_and_fails(rel):
    rel.add_worker()
    with rel.client() as c:
        jid = submit(c, spec(epochs=200, time_limit_s=1.0))
        done = terminal(c, jid, 60)
        assert done["status"] == "failed", done
        assert done["error"]["type"] == "time_limit"
        assert done["attempts"] == 1
        ck = list((rel.artifact_dir / "jobs" / jid / "checkpoints").glob("ckpt-*.pt"))
        assert ck, "the job checkpointed before failing"
