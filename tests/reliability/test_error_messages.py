"""What a job's error says: its reason, never a server path; and the job's log through a
Redis that is killed and restarted (a real redis-server)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import redis
from support import RedisServer, free_port

from tricklab.server.joblog import job_log, read_job_log
from tricklab.server.logs import log_context
from tricks.checkpoint import DiskFull
from worker.errors import error_of, public_message

ART = Path("/srv/tricklab/artifacts")


def test_paths_under_the_artifact_dir_become_what_they_are():
    msg = "[Errno 2] No such file or directory: '/srv/tricklab/artifacts/datasets/d0193ab.npz'"
    assert public_message(msg, ART) == "[Errno 2] No such file or directory: 'dataset d0193ab'"
    msg = "bad zip /srv/tricklab/artifacts/jobs/j01/checkpoints/ckpt-000000090.pt here"
    assert public_message(msg, ART) == (
        "bad zip checkpoints/ckpt-000000090.pt in the job's directory here"
    )


def test_other_absolute_paths_keep_only_their_last_part_and_urls_stay():
    msg = "in /usr/lib/python3/site-packages/torch/nn.py: see https://pytorch.org/docs/x"
    assert public_message(msg, ART) == "in .../nn.py: see https://pytorch.org/docs/x"


def test_missing_dataset_error():
    e = FileNotFoundError(
        errno.ENOENT, "No such file or directory", "/any/where/datasets/d0193ab.npz"
    )
    assert error_of(e) == {
        "type": "dataset_missing",
        "message": "dataset d0193ab is missing (deleted after the job was submitted?)",
    }


def test_disk_full_error_names_file_size_and_space():
    try:
        try:
            raise DiskFull("model.safetensors", 12_300_000, 0)
        except DiskFull as inner:
            raise RuntimeError("[enforce fail at inline_container.cc] write failed") from inner
    except RuntimeError as e:
        err = error_of(e)
    assert err == {
        "type": "disk_full",
        "message": "no space left writing model.safetensors (12.3 MB) to the job's directory: 0 B free",
    }


def test_job_log_lines_survive_a_redis_restart(tmp_path):
    rs = RedisServer(free_port(), tmp_path, fsync="always")
    rs.start()
    try:
        r = redis.Redis.from_url(rs.url, decode_responses=True, socket_connect_timeout=2)
        lg = logging.getLogger("test.joblog.blip")
        lg.setLevel(logging.INFO)
        with (
            job_log(r, "t", "jB", worker="w", flush_lines=2, flush_s=3600, close_retry_s=30) as h,
            log_context(attempt=1),  # what set_attempt does in a worker, reset after
        ):
            lg.info("before")
            rs.kill()
            for i in range(5):  # each due flush fails: the lines stay in memory
                lg.info("during %d", i)
            h.flush()
            assert h.dropped == 0
            rs.start()
            lg.info("after")
        lines, _ = read_job_log(r, "t", "jB", limit=100)
        assert [ln["msg"] for ln in lines] == [
            "before",
            *(f"during {i}" for i in range(5)),
            "after",
        ]
        assert {ln["attempt"] for ln in lines} == {1}
    finally:
        rs.kill()
