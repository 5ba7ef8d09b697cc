"""Helpers for the tests, on pytest's pythonpath: `from support import ...`.

- processes: a private redis-server, the API under uvicorn and Celery workers, as real processes
- service: the stack the `service` fixture yields, and `Cleanup` (what the `cleanup` fixture
  cancels after a test)
- cluster: the reliability tests' private cluster with short leases
- specs: the named job specs (minimal, small, long, plain, reliability)
- jobs: submit and stop a job over HTTP; the error shape
- bare: `BareApi`, an API without a worker whose jobs a test claims and finishes by hand
  (`from support.bare import BareApi`)
- waiting: `wait_for`, the one polling loop, and the job waits built on it
- history: a job's event stream and curves read back, and checks on them
- promtext: a strict parser for the Prometheus text format (`from support.promtext import ...`)
"""

from support.cluster import LEASE_TTL_S, MAX_RESTARTS, Cluster, cluster_env
from support.history import (
    assert_attempts_never_overlap,
    assert_curves_continuous,
    curves,
    events,
    expected_log_steps,
    statuses,
)
from support.jobs import assert_error, locs, stop_job, submit
from support.processes import (
    ROOT,
    ApiProc,
    Proc,
    RedisServer,
    free_port,
    launch_api,
    service_env,
    start_api,
    start_worker,
    worker_argv,
)
from support.service import Cleanup, Service
from support.specs import (
    LONG_TRAINING,
    long_spec,
    minimal_spec,
    plain_spec,
    reliability_spec,
    small_spec,
)
from support.waiting import (
    TERMINAL,
    get_job,
    wait_done,
    wait_epoch,
    wait_for,
    wait_job,
    wait_running,
    wait_status,
)

__all__ = [
    "LEASE_TTL_S",
    "LONG_TRAINING",
    "MAX_RESTARTS",
    "ROOT",
    "TERMINAL",
    "ApiProc",
    "Cleanup",
    "Cluster",
    "Proc",
    "RedisServer",
    "Service",
    "assert_attempts_never_overlap",
    "assert_curves_continuous",
    "assert_error",
    "cluster_env",
    "curves",
    "events",
    "expected_log_steps",
    "free_port",
    "get_job",
    "launch_api",
    "locs",
    "long_spec",
    "minimal_spec",
    "plain_spec",
    "reliability_spec",
    "service_env",
    "small_spec",
    "start_api",
    "start_worker",
    "statuses",
    "stop_job",
    "submit",
    "wait_done",
    "wait_epoch",
    "wait_for",
    "wait_job",
    "wait_running",
    "wait_status",
    "worker_argv",
]
