"""What a job does not pay for on a worker: the per-process cache of the built-in datasets,
the parent's pre-imports, and the claim → first log point timestamp a job reports
(progress.first_log_at), through real HTTP, Redis and a Celery worker process."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from support import plain_spec, submit, wait_done

import tricks.data
from worker import lifecycle

pytestmark = pytest.mark.service


def test_builtins_are_made_once_per_process_and_every_call_gets_its_own_copy():
    x0, y0 = tricks.data._BUILDERS["digits"](np.random.default_rng(tricks.data.GEN_SEED))
    x, y = tricks.data.builtin_arrays("digits")
    assert tricks.data._builtin.cache_info().currsize >= 1  # made once, then served
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, np.asarray(x0, dtype=np.float32))  # the builder's arrays
    np.testing.assert_array_equal(y, y0)
    x[:] = 0.0  # a job that changed its arrays in place changes no other job's
    y[:] = 0
    x2, y2 = tricks.data.builtin_arrays("digits")
    np.testing.assert_array_equal(x2, np.asarray(x0, dtype=np.float32))
    np.testing.assert_array_equal(y2, y0)


def test_preimport_loads_the_optimizer_machinery_without_cuda():
    import sys

    import torch

    lifecycle._preimport()
    assert "torch._dynamo" in sys.modules  # what torch.optim's first optimizer imports
    assert "sklearn.datasets" in sys.modules
    assert not torch.cuda.is_initialized()  # CUDA before the fork would break the children


def test_a_job_reports_its_first_log_point_between_claim_and_finish(service):
    with service.client() as c:
        job = submit(c, plain_spec(epochs=1, log_every=1))
        done = wait_done(c, job["id"])
        assert done["status"] == "succeeded", done
    started = datetime.fromisoformat(done["started_at"]).timestamp()
    finished = datetime.fromisoformat(done["finished_at"]).timestamp()
    first = done["progress"]["first_log_at"]
    assert started < first < finished, (started, first, finished)
