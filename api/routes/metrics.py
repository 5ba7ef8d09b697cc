"""GET /metrics: Prometheus text exposition of the service and of this API process."""

from __future__ import annotations

import logging

import redis
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.observability import CONTENT_TYPE, Exposition, LatencyHistograms, render_latencies
from tricklab.contract import STATUSES
from tricklab.server.telemetry import QUEUES, Collector

log = logging.getLogger("tricklab.api")

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def read_metrics(request: Request) -> Response:
    """Prometheus metrics: jobs by status, queue depths, workers, job durations, throughput, API latency."""
    state = request.app.state
    collector: Collector = state.metrics_collector
    hist: LatencyHistograms = state.request_latency
    out = Exposition()
    try:
        snap = collector.collect()
        up = 1
    except (redis.ConnectionError, redis.TimeoutError):
        log.warning("metrics: Redis unreachable; service gauges left out")
        snap, up = None, 0
    out.family(
        "tricklab_redis_up", "gauge", "1 when this API process reached Redis for this scrape."
    )
    out.sample("tricklab_redis_up", up)
    if snap is not None:
        out.family("tricklab_jobs", "gauge", "Jobs by status, over all tenants.")
        for s in STATUSES:
            out.sample("tricklab_jobs", snap.jobs[s], {"status": s})
        out.family(
            "tricklab_queue_depth", "gauge", "Messages waiting in the broker, per Celery queue."
        )
        for q in QUEUES:
            out.sample("tricklab_queue_depth", snap.queue_depth[q], {"queue": q})
        out.family(
            "tricklab_broker_unacked_messages",
            "gauge",
            "Messages delivered to workers and not yet acknowledged (running tasks), all queues.",
        )
        out.sample("tricklab_broker_unacked_messages", snap.unacked)
        out.family("tricklab_workers_alive", "gauge", "Workers with a recent heartbeat.")
        out.sample("tricklab_workers_alive", snap.workers_alive)
        out.family(
            "tricklab_training_samples_per_second",
            "gauge",
            "Sum of the latest samples/s reported by the running jobs, per queue.",
        )
        for q, v in snap.samples_per_second.items():
            out.sample("tricklab_training_samples_per_second", v, {"queue": q})
        out.family(
            "tricklab_running_jobs_reporting",
            "gauge",
            "Running jobs that have reported a throughput.",
        )
        out.sample("tricklab_running_jobs_reporting", snap.running_reporting)
        name = "tricklab_job_duration_seconds"
        out.family(name, "histogram", "Run time (first start to finish) of jobs a worker finished.")
        for status, h in snap.job_seconds.items():
            out.histogram(name, {"status": status}, h.buckets, h.count, h.sum)
    render_latencies(out, hist)
    return Response(out.text(), media_type=CONTENT_TYPE)
